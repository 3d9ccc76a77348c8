"""The linter's reading of the time extensions: ``lifecycle`` (rule ``lifecycle``) and
``schedules`` (rule ``schedule``), docs/spec.md#lifecycle and docs/spec.md#schedules.

``read_lifecycle`` and ``read_schedules`` run during the walk and check what a value
alone decides (a duration, a cron, a time zone); ``check_time`` runs after it and checks
the names they use against the declared events and states. What they read becomes the
normalized ``lifecycle`` and ``schedules`` of the spec (statewright.spec.models)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from statewright.cron import CronError, check_cron, zone, zone_names
from statewright.durations import EXAMPLES, DurationError, format_duration, parse_duration
from statewright.spec import rules
from statewright.spec.loader import MappingNode, Node, Scalar, SequenceNode, kind_of
from statewright.spec.rules import (
    DEFAULT_TIMEZONE,
    LIFECYCLE_KEYS,
    SCHEDULE_KEYS,
    SYSTEM_EVENTS,
    scheduler_name,
    scheduler_name_room,
)
from statewright.spec.wording import explain, shown

if TYPE_CHECKING:
    from statewright.spec.lint import _Linter

SCHEDULE_NAME = re.compile(rules.SCHEDULE_NAME_PATTERN)
SPEC_NAME_IN_SCHEDULER = re.compile(rules.SPEC_NAME_IN_SCHEDULER_PATTERN)
_LIFECYCLE_EXAMPLE = "a mapping like `{ttl: 72h, expire_event: DESTROY}`"
_SCHEDULE_EXAMPLE = (
    "a mapping like `{name: nightly, cron: '0 19 * * MON-FRI', timezone: Europe/Berlin, "
    "event: SLEEP}`"
)


@dataclass
class TimeLifecycle:
    """What the walk read of ``lifecycle``; ``document`` is None when it is wrong."""

    key: Scalar
    document: dict[str, Any] | None
    # Event names it uses, checked against `events` once they are known.
    events: list[tuple[str, Scalar]] = field(default_factory=list)


@dataclass
class TimeSchedule:
    node: Node
    document: dict[str, Any] | None
    name: Scalar | None = None
    event: Scalar | None = None
    states: list[Scalar] = field(default_factory=list)


# ---- durations ---------------------------------------------------------------------


def _duration(linter: _Linter, node: Node, what: str) -> int | None:
    if isinstance(node, Scalar) and isinstance(node.value, str):
        try:
            return parse_duration(node.value)
        except DurationError as exc:
            linter.report(node, "lifecycle", f"{what}: {exc}")
            return None
    hint = ""
    if (
        isinstance(node, Scalar)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        hint = f" (a bare number has no unit: write `{node.value}s`)"
    linter.report(
        node,
        "lifecycle",
        f"{what} must be a duration such as {EXAMPLES}, not {_described(node)}{hint}",
    )
    return None


def _described(node: Node) -> str:
    if isinstance(node, Scalar) and node.value is not None:
        return f"{kind_of(node)} {shown(node.value)}"
    return kind_of(node)


def _list(node: Node) -> list[Node] | None:
    """A list's items; a single scalar counts as a list of one (`warn_before: 1h`)."""
    if isinstance(node, SequenceNode):
        return node.items
    if isinstance(node, Scalar):
        return [] if node.value is None else [node]
    return None


# ---- lifecycle -----------------------------------------------------------------------


def read_lifecycle(linter: _Linter, key: Scalar, node: Node) -> TimeLifecycle:  # noqa: C901 — one branch per key of `lifecycle`
    result = TimeLifecycle(key, None)
    if not isinstance(node, MappingNode):
        linter.report(node, "lifecycle", f"`lifecycle` must be {_LIFECYCLE_EXAMPLE}")
        return result
    document: dict[str, Any] = {}
    valid = True
    max_node: Node | None = None
    for name, _, value in linter.keys(node, LIFECYCLE_KEYS, "in `lifecycle`"):
        if name in ("ttl", "max_ttl"):
            seconds = _duration(linter, value, f"`lifecycle.{name}`")
            valid = valid and seconds is not None
            document[name] = seconds
            if name == "max_ttl":
                max_node = value
        elif name == "expire_event":
            event = linter.name_of(value, "`lifecycle.expire_event` (an event name)")
            if event is None:
                valid = False
            else:
                document[name] = event.name
                result.events.append(("`lifecycle.expire_event`", event))
        elif name == "warn_before":
            offsets = _warnings(linter, value)
            valid = valid and offsets is not None
            document[name] = offsets
        else:
            events = _event_list(linter, value)
            valid = valid and events is not None
            document[name] = [e.name for e in events or []]
            result.events += [("`lifecycle.extend_on`", e) for e in events or []]
    missing = [f"`{k}`" for k in ("ttl", "expire_event") if node.pair(k) is None]
    if missing:
        linter.report(
            key,
            "lifecycle",
            f"`lifecycle` needs {' and '.join(missing)}; it is {_LIFECYCLE_EXAMPLE}",
        )
        valid = False
    ttl, max_ttl = document.get("ttl"), document.get("max_ttl")
    if isinstance(ttl, int) and isinstance(max_ttl, int) and ttl > max_ttl:
        assert max_node is not None
        linter.report(
            max_node,
            "lifecycle",
            f"`lifecycle.max_ttl` ({format_duration(max_ttl)}) is shorter than `ttl` "
            f"({format_duration(ttl)}); max_ttl is the most a machine may ask for, so it is at "
            "least the ttl (leave it out to make it the ttl)",
        )
        valid = False
    longest = max_ttl if isinstance(max_ttl, int) else ttl
    if isinstance(longest, int) and valid:
        valid = _warnings_fit(linter, node, document.get("warn_before") or [], longest)
    result.document = document if valid else None
    return result


def _warnings(linter: _Linter, node: Node) -> list[int] | None:
    items = _list(node)
    if items is None:
        linter.report(node, "lifecycle", "`lifecycle.warn_before` must be a list of durations")
        return None
    offsets: list[int] = []
    valid = True
    for item in items:
        seconds = _duration(linter, item, "a `lifecycle.warn_before` offset")
        if seconds is None:
            valid = False
        elif seconds in offsets:
            linter.report(
                item, "lifecycle", f"`warn_before` lists {format_duration(seconds)} twice"
            )
            valid = False
        else:
            offsets.append(seconds)
    return offsets if valid else None


def _warnings_fit(linter: _Linter, node: MappingNode, offsets: list[int], longest: int) -> bool:
    holder = node.get("warn_before")
    items = _list(holder) if holder is not None else None
    for offset, item in zip(offsets, items or [], strict=False):
        if offset >= longest:
            linter.report(
                item,
                "lifecycle",
                f"a warning {format_duration(offset)} before expiry could never come: no "
                f"machine lives longer than {format_duration(longest)} (max_ttl)",
            )
            return False
    return True


def _event_list(linter: _Linter, node: Node) -> list[Scalar] | None:
    items = _list(node)
    if items is None:
        linter.report(node, "lifecycle", "`lifecycle.extend_on` must be a list of event names")
        return None
    names = [linter.name_of(item, "an event name") for item in items]
    return None if None in names else [n for n in names if n is not None]


# ---- schedules -----------------------------------------------------------------------


def read_schedules(linter: _Linter, node: Node) -> list[TimeSchedule] | None:
    if isinstance(node, Scalar) and node.value is None:
        return []
    if not isinstance(node, SequenceNode):
        linter.report(
            node, "schedule", f"`schedules` must be a list, each item {_SCHEDULE_EXAMPLE}"
        )
        return None
    return [_schedule(linter, item) for item in node.items]


def _schedule(linter: _Linter, node: Node) -> TimeSchedule:  # noqa: C901 — one branch per key of a schedule
    result = TimeSchedule(node, None)
    if not isinstance(node, MappingNode):
        linter.report(node, "schedule", f"a schedule must be {_SCHEDULE_EXAMPLE}")
        return result
    document: dict[str, Any] = {"timezone": DEFAULT_TIMEZONE}
    valid = True
    for name, _, value in linter.keys(node, SCHEDULE_KEYS, "in a schedule"):
        if name == "name":
            result.name = _schedule_name(linter, value)
            valid = valid and result.name is not None
        elif name == "cron":
            document["cron"] = _cron(linter, value)
        elif name == "timezone":
            document["timezone"] = _timezone(linter, value)
        elif name == "event":
            result.event = linter.name_of(value, "a schedule's `event` (an event name)")
        else:
            states = _list(value)
            if not states:
                linter.report(
                    value,
                    "schedule",
                    "a schedule's `states` must list states, not be "
                    f"{'empty' if states == [] else _described(value)}; leave it out to reach "
                    "every state that handles the event",
                )
                valid = False
                continue
            names = [linter.name_of(item, "a state name") for item in states]
            result.states = [n for n in names if n is not None]
            valid = valid and None not in names
    missing = [f"`{key}`" for key in ("name", "cron", "event") if node.pair(key) is None]
    if missing:
        linter.report(
            node, "schedule", f"a schedule needs {', '.join(missing)}; it is {_SCHEDULE_EXAMPLE}"
        )
        valid = False
    if valid and None not in document.values() and result.name and result.event:
        document["name"] = result.name.name
        document["event"] = result.event.name
        if node.pair("states") is not None:
            document["states"] = [s.name for s in result.states]
        result.document = document
    return result


def _schedule_name(linter: _Linter, node: Node) -> Scalar | None:
    name = linter.name_of(node, "a schedule's `name`")
    if name is not None and not SCHEDULE_NAME.match(name.name):
        linter.report(
            name,
            "schedule",
            f"schedule name {shown(name.name)} must match {rules.SCHEDULE_NAME_PATTERN} "
            "(letters, digits, `_` and `-`; it becomes part of an EventBridge Scheduler "
            "name), e.g. nightly-sleep",
        )
        return None
    return name


def _cron(linter: _Linter, node: Node) -> str | None:
    if not (isinstance(node, Scalar) and isinstance(node.value, str)):
        linter.report(
            node,
            "schedule",
            "`cron` must be five fields in quotes, e.g. '0 19 * * MON-FRI', "
            f"not {_described(node)}",
        )
        return None
    try:
        return check_cron(node.value)
    except CronError as exc:
        linter.report(node, "schedule", str(exc))
        return None


def _timezone(linter: _Linter, node: Node) -> str | None:
    if not (isinstance(node, Scalar) and isinstance(node.value, str)):
        linter.report(node, "schedule", f"`timezone` must be an IANA name, not {_described(node)}")
        return None
    try:
        zone(node.value)
    except CronError as exc:
        linter.report(node, "schedule", explain(str(exc), word=node.value, candidates=zone_names()))
        return None
    return node.value


# ---- names used, checked after the walk --------------------------------------------


def check_time(linter: _Linter, spec_name: str) -> None:
    if linter.lifecycle is not None:
        for what, event in linter.lifecycle.events:
            _declared(linter, event, what, "lifecycle")
    if linter.schedules:
        _check_schedules(linter, linter.schedules, spec_name)


def _declared(linter: _Linter, event: Scalar, what: str, rule: str) -> bool:
    events = linter.events
    if events is None or event.name in events:
        return True
    declared = list(events)
    reason = (
        "a system event the control plane fires itself"
        if event.name in SYSTEM_EVENTS
        else "not a declared event (declare it under `events`)"
    )
    linter.report(
        event,
        rule,
        explain(
            f"{what} `{event.name}` is {reason}",
            word=event.name,
            candidates=declared,
            accepted=declared,
        ),
    )
    return False


def _check_schedules(linter: _Linter, schedules: list[TimeSchedule], spec_name: str) -> None:
    room = scheduler_name_room(spec_name)
    if not SPEC_NAME_IN_SCHEDULER.match(spec_name):
        first = schedules[0].node
        linter.report(
            first,
            "schedule",
            f"spec name `{spec_name}` (the file name) is part of each schedule's EventBridge "
            "Scheduler name, which allows only letters, digits, `_`, `.` and `-`: rename the file",
        )
    seen: dict[str, Scalar] = {}
    for schedule in schedules:
        name = schedule.name
        if name is not None:
            if name.name in seen:
                linter.report(
                    name,
                    "schedule",
                    f"schedule `{name.name}` is already defined at line {seen[name.name].line}",
                )
            seen.setdefault(name.name, name)
            if len(name.name) > room:
                example = scheduler_name("ENV", spec_name, name.name)
                linter.report(
                    name,
                    "schedule",
                    f"schedule name `{name.name}` is too long: its EventBridge Scheduler name "
                    f"`{example}` must fit {rules.SCHEDULER_NAME_CHARS} characters with an "
                    f"environment name of up to {rules.MAX_ENVIRONMENT_NAME_CHARS}, so this "
                    f"spec's schedule names may have at most {max(room, 0)}",
                )
        if schedule.event is not None:
            _declared(linter, schedule.event, "schedule event", "schedule")
        _check_schedule_states(linter, schedule)


def _check_schedule_states(linter: _Linter, schedule: TimeSchedule) -> None:
    states = linter.states
    if states is None:
        return
    known = list(states)
    for item in schedule.states:
        state = states.get(item.name)
        if state is None:
            linter.report(
                item,
                "schedule",
                explain(
                    f"schedule state `{item.name}` is not a state",
                    word=item.name,
                    candidates=known,
                    accepted=known,
                ),
            )
        elif (
            schedule.event is not None
            and state.handlers is not None
            and schedule.event.name not in state.handlers
        ):
            linter.warn(
                item,
                "schedule",
                f"state `{item.name}` does not handle `{schedule.event.name}`, so the schedule "
                "never applies to a machine there",
            )
