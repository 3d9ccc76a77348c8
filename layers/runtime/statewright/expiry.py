"""A machine's time to live, the parts the engine and the service share (docs/runtime.md,
"TTL"): the ttl a request may ask for, the timers that carry expiry and its warnings,
and what expiry puts on the bus. Pure: no I/O, no clock (``now`` is passed in).

The engine (statewright.engine) decides with these; the service parses what callers
send (``parse_ttl``) before anything is read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from statewright.durations import DurationError, format_duration, parse_duration
from statewright.errors import InvalidRequest
from statewright.model import Machine, format_time, parse_time
from statewright.spec.models import Lifecycle, Spec
from statewright.timers import Timer, TimerPurpose

# The history source and actor of what expiry does (docs/api.md, "Access and actors"),
# and the ``reason`` of the internal Machine Event that carries the expire event.
EXPIRY: Final = "expiry"
EXPIRING_DETAIL_TYPE: Final = "Machine Expiring"


def parse_ttl(text: Any, field: str = "ttl") -> int:
    """Whole seconds of a requested ttl; InvalidRequest naming ``field`` otherwise."""
    if not isinstance(text, str):
        raise InvalidRequest(
            f"{field} must be a duration as text, such as 24h, 30m or 7d; got {text!r}"
        )
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise InvalidRequest(f"{field}: {exc}") from exc


def requested_ttl(spec: Spec, ttl: int, field: str = "ttl") -> int:
    """``ttl`` if ``spec``'s machines may have it: the spec has a lifecycle and the ttl is
    at most its ``max_ttl`` (never silently shortened). InvalidRequest otherwise."""
    lifecycle = spec.lifecycle
    if lifecycle is None:
        raise InvalidRequest(
            f"{field}: machines of spec {spec.name} do not expire (the spec has no "
            "lifecycle), so they take no ttl; leave it out, or give the spec a lifecycle"
        )
    if ttl > lifecycle.max_ttl:
        raise InvalidRequest(
            f"{field} {format_duration(ttl)} is longer than spec {spec.name} allows: its "
            f"max_ttl is {format_duration(lifecycle.max_ttl)}; ask for at most that"
        )
    return ttl


def expiry_timers(machine: Machine, lifecycle: Lifecycle, now: str) -> list[Timer]:
    """The EXPIRY timer at the machine's ``expires_at`` and a WARNING timer for each
    ``warn_before`` offset whose time is still to come. Each is guarded by
    ``expires_at``: once it moves, the old timers are stale."""
    if machine.expires_at is None:
        return []
    expires_at = machine.expires_at
    timers = [
        Timer(
            purpose=TimerPurpose.EXPIRY,
            machine_id=machine.id,
            due=expires_at,
            guard={"expires_at": expires_at},
        )
    ]
    at, current = parse_time(expires_at), parse_time(now)
    for offset in lifecycle.warn_before:
        due = at - timedelta(seconds=offset)
        if due > current:
            timers.append(
                Timer(
                    purpose=TimerPurpose.WARNING,
                    machine_id=machine.id,
                    due=format_time(due),
                    guard={"expires_at": expires_at, "offset": offset},
                )
            )
    return timers


def expire_event_detail(machine: Machine, event: str) -> dict[str, Any]:
    """The internal ``Machine Event`` that sends the expire event to the machine at its
    current epoch (statewright.service reads ``reason``)."""
    return {
        "machine_id": machine.id,
        "event": event,
        "epoch": machine.epoch,
        "spec": machine.spec,
        "reason": EXPIRY,
    }


def expiring_detail(machine: Machine, now: str) -> dict[str, Any]:
    """``Machine Expiring``: who expires, in which state, when, and in how many seconds."""
    assert machine.expires_at is not None
    left = (parse_time(machine.expires_at) - parse_time(now)).total_seconds()
    return {
        "machine_id": machine.id,
        "spec": machine.spec,
        "state": machine.state,
        "expires_at": machine.expires_at,
        "in_seconds": max(0, round(left)),
    }
