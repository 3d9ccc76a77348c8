"""The state diagram of a spec, as Mermaid ``stateDiagram-v2`` or Graphviz DOT.

Every state shows its tasks (and their executors) in the order they start, a task that
needs others in the state saying which (``after a, b``); ``no-op`` handlers are listed on
their state since they change nothing; terminal states lead to the end marker
(Mermaid) or get a double border (DOT). Time shows too: INIT carries the lifecycle (ttl,
warnings, the events that extend it), each state a schedule reaches names it, and an
edge taken by the expire event or a schedule's event says so."""

from __future__ import annotations

import re

from statewright.durations import format_duration
from statewright.spec.models import Action, Schedule, Spec

# Mermaid's state-diagram lexer is case-insensitive and reads these words as keywords
# wherever an identifier may start, so a state called NOTE or DEFAULT_ENV cannot be
# used as an id as it is.
_MERMAID_KEYWORDS = (
    "default",
    "note",
    "state",
    "class",
    "classdef",
    "scale",
    "direction",
    "hide",
    "acc",
    "end",
    "statediagram",
)
_MERMAID_ID = re.compile(r"^[A-Za-z0-9_]+$")
# Characters a Mermaid description cannot hold (its lexer stops at `:`, `;`, newline).
_MERMAID_UNSAFE = re.compile(r"[:;\n\r#%{}\"<>]+")


def _state_lines(spec: Spec, name: str) -> list[str]:
    state = spec.states[name]
    lines = []
    # In the order they start: each wave once everything it needs has succeeded.
    for wave in spec.task_order(name):
        for task_name in wave:
            task = spec.tasks.get(task_name)
            executor = f" ({task.executor})" if task else ""
            needs = spec.needs_in_state(name, task_name) if task else []
            after = f" after {', '.join(needs)}" if needs else ""
            lines.append(f"task {task_name}{executor}{after}")
    ignored = [event for event, actions in state.on.items() if _target(actions) is None]
    if ignored:
        lines.append("no-op on " + ", ".join(ignored))
    return lines + _time_lines(spec, name)


def _time_lines(spec: Spec, name: str) -> list[str]:
    lines: list[str] = []
    life = spec.lifecycle
    if life is not None and name == "INIT":
        ttl = format_duration(life.ttl)
        if life.max_ttl != life.ttl:
            ttl += f" (at most {format_duration(life.max_ttl)})"
        lines.append(f"expires after {ttl} with {life.expire_event}")
        if life.warn_before:
            offsets = ", ".join(format_duration(o) for o in life.warn_before)
            lines.append(f"warned {offsets} before")
        if life.extend_on:
            lines.append("extended by " + ", ".join(life.extend_on))
    for schedule in _schedules_in(spec, name):
        lines.append(
            f"schedule {schedule.name} sends {schedule.event} at {schedule.cron} "
            f"({schedule.timezone})"
        )
    return lines


def _schedules_in(spec: Spec, state: str) -> list[Schedule]:
    """The schedules that reach a machine in ``state``."""
    return [
        s
        for s in spec.schedules or []
        if s.applies_in(state) and spec.handler(state, s.event) is not None
    ]


def _edge_label(spec: Spec, state: str, event: str) -> str:
    """The event, and what sends it besides a caller: expiry, a schedule."""
    senders = [f"schedule {s.name}" for s in _schedules_in(spec, state) if s.event == event]
    if spec.lifecycle is not None and spec.lifecycle.expire_event == event:
        senders.insert(0, "expiry")
    return f"{event} ({', '.join(senders)})" if senders else event


def _target(actions: list[Action]) -> str | None:
    """Where a handler goes: its advance's state, or None for a no-op handler."""
    for action in actions:
        if action.action == "advance" and action.state:
            return action.state
    return None


def _mermaid_ids(spec: Spec) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for name in spec.states:
        lowered = name.lower()
        safe = _MERMAID_ID.match(name) and not lowered.startswith(_MERMAID_KEYWORDS)
        candidate = name if safe else "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        unique, n = candidate, 2
        while unique.lower() in used:
            unique, n = f"{candidate}_{n}", n + 1
        used.add(unique.lower())
        ids[name] = unique
    return ids


def mermaid(spec: Spec) -> str:
    """A ``stateDiagram-v2`` document."""
    ids = _mermaid_ids(spec)
    out = ["stateDiagram-v2"]
    # Every state is declared, so one with no task and no transition still shows.
    for name, node_id in ids.items():
        out.append(f"    {node_id}" if node_id == name else f'    state "{name}" as {node_id}')
    for name, node_id in ids.items():
        for line in _state_lines(spec, name):
            text = _MERMAID_UNSAFE.sub(" ", line).strip()
            out.append(f"    {node_id} : {text}")
    if "INIT" in ids:
        out.append(f"    [*] --> {ids['INIT']}")
    for name, state in spec.states.items():
        for event, actions in state.on.items():
            target = _target(actions)
            if target is not None and target in ids:
                label = _MERMAID_UNSAFE.sub(" ", _edge_label(spec, name, event)).strip()
                out.append(f"    {ids[name]} --> {ids[target]} : {label}")
        if state.terminal:
            out.append(f"    {ids[name]} --> [*]")
    return "\n".join(out) + "\n"


def _dot_string(*lines: str) -> str:
    """A quoted DOT string; several lines are joined with DOT's own line break."""
    escaped = [
        line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
        for line in lines
    ]
    return '"' + "\\n".join(escaped) + '"'


def dot(spec: Spec) -> str:
    """A Graphviz ``digraph``."""
    out = [
        f"digraph {_dot_string(spec.name)} {{",
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica"];',
        '    "[*]" [shape=point, width=0.2, label=""];',
    ]
    for name, state in spec.states.items():
        attributes = [f"label={_dot_string(name, *_state_lines(spec, name))}"]
        if state.terminal:
            attributes.append("peripheries=2")
        out.append(f"    {_dot_string(name)} [{', '.join(attributes)}];")
    if "INIT" in spec.states:
        out.append(f'    "[*]" -> {_dot_string("INIT")};')
    for name, state in spec.states.items():
        for event, actions in state.on.items():
            target = _target(actions)
            if target is not None and target in spec.states:
                out.append(
                    f"    {_dot_string(name)} -> {_dot_string(target)} "
                    f"[label={_dot_string(_edge_label(spec, name, event))}];"
                )
    out.append("}")
    return "\n".join(out) + "\n"


def render(spec: Spec, fmt: str) -> str:
    """``fmt`` is ``mermaid`` or ``dot``."""
    return dot(spec) if fmt == "dot" else mermaid(spec)
