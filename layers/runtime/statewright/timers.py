"""Timers: one future moment for one machine, with a purpose (docs/runtime.md, "Timers").

The engine asks for a timer with the ``ArmTimer`` effect; a Timers adapter
(statewright.ports.Timers) keeps it — EventBridge Scheduler on AWS, the SQLite
``timers`` table and its thread locally — and hands it back to ``Service.fire_timer``
when it is due. What a timer may still do is decided when it fires: its ``guard`` names
what must still hold (the epoch and attempt of a task, say), and a timer whose guard no
longer holds changes nothing (``stale``)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

# What a timer's target input is keyed by (the dispatcher tells a timer fire by it).
TARGET_KEY = "statewright_timer"

# EventBridge Scheduler's rule for a schedule name, which every adapter follows.
NAME_MAX_LENGTH = 64
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# The readable part of a name: purpose and the start of the machine id; the digest that
# follows makes the name unique.
_MACHINE_PART = 24
_DIGEST_PART = 24

Guard = dict[str, str | int]


class TimerPurpose(StrEnum):
    ATTEMPT = "attempt"  # a pending attempt's not_before has come: start it
    TIMEOUT = "timeout"  # a running attempt's deadline has come: fail it with Timeout
    EXPIRY = "expiry"  # the machine's expires_at has come: it expires (docs/runtime.md#ttl)
    WARNING = "warning"  # expires_at minus a warn_before offset: Machine Expiring
    SCHEDULE = "schedule"  # a spec schedule's fire, locally (statewright.schedules)


class Timer(BaseModel):
    """A due time for one machine. ``due`` is an ISO-8601 UTC time as the engine writes
    it (engine.format_time); ``guard`` is what must still hold when it fires: for
    ATTEMPT and TIMEOUT ``{"task", "epoch", "attempt"}``, for EXPIRY ``{"expires_at"}``,
    for WARNING ``{"expires_at", "offset"}`` (seconds before expiry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: TimerPurpose
    machine_id: str
    due: str
    guard: Guard

    @field_validator("due")
    @classmethod
    def _one_time_format(cls, value: str) -> str:
        """Every due time in the one format the engine writes (UTC, milliseconds, ``Z``),
        so equal times are equal text and text order is time order."""
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError(f"due {value!r} needs a time zone (UTC: a trailing Z)")
        return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def name(self) -> str:
        """Deterministic, at most 64 characters of ``[A-Za-z0-9_.-]``: the same timer
        always gets the same name (so arming it twice keeps one), and two timers that
        differ in anything — the due time included — get different names (so a
        machine created again under an old id never meets its predecessor's timers)."""
        canonical = json.dumps(
            [self.purpose.value, self.machine_id, self.due, self.guard],
            sort_keys=True,
            separators=(",", ":"),
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_PART]
        machine = _NAME_UNSAFE.sub("_", self.machine_id[:_MACHINE_PART])
        return f"{self.purpose.value}-{machine}-{digest}"[:NAME_MAX_LENGTH]

    def target_input(self) -> dict[str, Any]:
        """What the adapter hands back when the timer fires (EventBridge Scheduler's
        target input on AWS): ``{"statewright_timer": <the timer as JSON>}``."""
        return {TARGET_KEY: self.model_dump(mode="json")}


def task_guard(task: str, epoch: int, attempt: int) -> Guard:
    """The guard of an ATTEMPT or TIMEOUT timer: that attempt of that task."""
    return {"task": task, "epoch": epoch, "attempt": attempt}
