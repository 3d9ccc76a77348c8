"""The aggregate (Machine) and the messages that move it. Pydantic models for every row
and message, so stores and buses serialize one shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from statewright.spec import rules

MetadataValue = str | int | float | bool | None
Metadata = dict[str, MetadataValue]

TaskStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
MachineStatus = Literal["running", "waiting", "failed"]
SystemEvent = Literal["NEXT", "FAILED"]
SYSTEM_EVENTS: frozenset[str] = frozenset(rules.SYSTEM_EVENTS)

MACHINE_ID_PATTERN = rules.MACHINE_ID_PATTERN
# NUL, or half of a UTF-16 surrogate pair: JSON can spell both ("\u0000", "\ud800"), but
# no store, log or task should see them (a lone surrogate cannot even be encoded as UTF-8).
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
EVENT_SOURCE = "statewright"

# ``error_type`` of a task failure the control plane itself decided (a Lambda function's
# failure carries the function's own error type instead).
OUTPUT_TOO_LARGE = "OutputTooLarge"
TIMEOUT = "Timeout"
START_FAILED = "StartFailed"
REFERENCE_ERROR = "ReferenceError"
DRIFT_DETECTED = "DriftDetected"


def now_iso() -> str:
    """UTC timestamp with millisecond precision, the one format stored everywhere."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TaskRecord(BaseModel):
    """The latest run of one task of a machine (public fields first, then internal)."""

    model_config = ConfigDict(extra="forbid")

    executor: str
    status: TaskStatus = "pending"
    attempt: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    # What kind of failure: the Lambda error's type (``ValueError``) or one of the control
    # plane's own (``OutputTooLarge``, ``Timeout``, ``StartFailed``...); None on success.
    error_type: str | None = None
    output: Any = None
    state: str
    epoch: int
    # Internal: executor handle (CodeBuild build id, local run id) used to cancel and to
    # match CodeBuild's own events; never shown in the API.
    run_id: str | None = None
    # Internal: earliest time the next attempt may start (retry backoff).
    not_before: str | None = None

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude={"run_id", "not_before"})


class Machine(BaseModel):
    """A running instance of a spec. ``version`` is the optimistic-concurrency counter:
    every successful write stores version + 1 on condition that version still matches."""

    model_config = ConfigDict(extra="forbid")

    id: str
    spec: str
    spec_digest: str
    state: str
    previous_state: str | None = None
    status: MachineStatus = "running"
    epoch: int = 1
    version: int = 0
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)
    # Internal: the epoch whose NEXT/FAILED has been published, so a satisfied state
    # publishes once per epoch (the reconciler re-publishes when it was lost).
    published: dict[str, int] = Field(default_factory=dict)
    # Internal: history entries written so far (sequence of the next one is this + 1).
    history_seq: int = 0

    def public(self) -> dict[str, Any]:
        """The Machine JSON of docs/api.md#machine-json."""
        data = self.model_dump(exclude={"published", "history_seq", "tasks"})
        data["tasks"] = {name: rec.public() for name, rec in self.tasks.items()}
        return data

    def current_tasks(self) -> dict[str, TaskRecord]:
        return {n: t for n, t in self.tasks.items() if t.epoch == self.epoch}


class HistoryEntry(BaseModel):
    """One line of GET /machines/{id}/history. ``kind`` is one of: event (an accepted
    event), transition, task_started, task_finished, task_cancelled, created, deleted."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    at: str = Field(default_factory=now_iso)
    kind: str
    epoch: int
    state: str
    event: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    task: str | None = None
    attempt: int | None = None
    status: str | None = None
    error: str | None = None
    error_type: str | None = None
    source: str | None = None


# ---- bus messages (docs/aws.md#event-flows) ------------------------------------------

DetailType = Literal["Machine Event", "Task Finished", "Machine State Changed", "Machine Deleted"]


class MachineEventDetail(BaseModel):
    """detail of ``Machine Event``: external (users' rules) or internal NEXT/FAILED."""

    model_config = ConfigDict(extra="ignore")

    machine_id: str
    event: str
    metadata: Metadata | None = None
    spec: str | None = None
    epoch: int | None = None


class TaskFinishedDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    machine_id: str
    epoch: int
    task: str
    attempt: int
    status: Literal["succeeded", "failed"]
    output: Any = None
    error: str | None = None
    error_type: str | None = None


class MachineStateChangedDetail(BaseModel):
    machine_id: str
    spec: str
    to: str
    epoch: int
    from_: str | None = Field(default=None, alias="from")

    model_config = ConfigDict(populate_by_name=True)


class MachineDeletedDetail(BaseModel):
    machine_id: str
    spec: str
    state: str
    epoch: int


class BusEvent(BaseModel):
    """What a Bus publishes: EventBridge's Source, DetailType and Detail."""

    source: str = EVENT_SOURCE
    detail_type: DetailType
    detail: dict[str, Any]
