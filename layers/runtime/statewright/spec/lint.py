"""The Machine 1.0 linter: every rule and warning of docs/spec.md#rules (the page also says
how each one is decided), with line and column of the offending node.

The linter walks the located YAML tree once, recording what it learns (declared events,
states, tasks, handlers), then checks references between them and the shape of the
state graph. Where a part of the spec has the wrong type, the checks that depend on it
are skipped, so one mistake gives one finding and not a cascade of consequences."""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from statewright.executors.registry import registry
from statewright.spec import rules
from statewright.spec.findings import Finding, Severity
from statewright.spec.lint_config import config_problems, strip_extensions
from statewright.spec.lint_tasks import (
    check_needs,
    check_next_cycle,
    check_references,
    check_saved_plans,
)
from statewright.spec.lint_time import (
    TimeLifecycle,
    TimeSchedule,
    check_time,
    read_lifecycle,
    read_schedules,
)
from statewright.spec.loader import (
    Loaded,
    MappingNode,
    Node,
    Scalar,
    SequenceNode,
    kind_of,
    load,
    load_bytes,
)
from statewright.spec.models import Spec
from statewright.spec.rules import (
    ACTION_KEYS,
    ACTIONS,
    CANCEL_MODES,
    EXTENSION_KEYS,
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    RETRY_KEYS,
    SPEC_VERSION,
    STATE_KEYS,
    SYSTEM_EVENTS,
    TASK_KEYS,
    TOP_KEYS,
)
from statewright.spec.wording import explain, shown

__all__ = ["Finding", "LintResult", "lint_file", "lint_text", "spec_name"]

NAME_PATTERN = re.compile(rules.NAME_PATTERN)
TASK_NAME_PATTERN = re.compile(rules.TASK_NAME_PATTERN)
_YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n", "Yes", "No", "YES", "NO"})


@dataclass
class LintResult:
    """Findings of one spec, in file order; ``spec`` is the normalized spec, or None
    when any finding is an error."""

    path: str
    findings: list[Finding]
    spec: Spec | None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


def spec_name(path: str | Path) -> str:
    """A spec's name: its file name without ``.yml``/``.yaml``."""
    name = Path(path).name
    for suffix in (".yml", ".yaml"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def lint_text(
    text: str,
    *,
    path: str = "<string>",
    name: str | None = None,
    base_dir: str | None = None,
    strict: bool = False,
) -> LintResult:
    """Lint one spec given as text. Never raises: every problem is a finding."""
    return _lint(load(text, path), path, name or spec_name(path), base_dir, strict)


def lint_file(path: Path, *, strict: bool = False) -> LintResult:
    """Lint one spec file. The spec's name is the file's stem and its ``base_dir`` the
    file's absolute folder. Raises OSError when the file cannot be read."""
    data = path.read_bytes()
    loaded = load_bytes(data, str(path))
    return _lint(loaded, str(path), spec_name(path), str(path.resolve().parent), strict)


def _lint(loaded: Loaded, path: str, name: str, base_dir: str | None, strict: bool) -> LintResult:
    linter = _Linter(path, strict)
    linter.findings.extend(loaded.findings)
    spec: Spec | None = None
    if isinstance(loaded.root, MappingNode):
        linter.walk(loaded.root)
        linter.cross_check()
        check_time(linter, name)
        linter.warn_about_handlers()
        # On a broken spec the graph-wide warnings mostly echo an error (a misspelt
        # target makes its state "unreachable"), so they wait until the errors are gone.
        if not any(f.severity == "error" for f in linter.findings):
            linter.warn_about_graph()
        if not any(f.severity == "error" for f in linter.findings):
            spec = linter.build(loaded.root, name, base_dir)
    return LintResult(path, _ordered(linter.findings), spec)


def _ordered(findings: list[Finding]) -> list[Finding]:
    """File order, one finding per rule and place (an anchor merged into several
    mappings would otherwise report the same node once per use)."""
    seen: set[tuple[int, int, str]] = set()
    unique: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.line, f.column, f.severity, f.rule)):
        identity = (finding.line, finding.column, finding.rule)
        if identity not in seen:
            seen.add(identity)
            unique.append(finding)
    return unique


# What the walk learns. ``None`` for a collection means "unknown: it had the wrong
# type", which switches off the checks that would depend on it.


@dataclass
class _Action:
    node: Node
    action: str | None = None
    target: Scalar | None = None


@dataclass
class _Handler:
    key: Scalar
    actions: list[_Action] | None = None


@dataclass
class _State:
    key: Scalar
    terminal: bool | None = False
    tasks: list[Scalar] | None = field(default_factory=list)
    handlers: dict[str, _Handler] | None = field(default_factory=dict)
    description: str | None = None


@dataclass
class _Task:
    key: Scalar
    executor: str | None = None
    config: Any = None
    retry: dict[str, Any] | None = None
    timeout_seconds: int | None = None
    cancel: str | None = None
    description: str | None = None
    needs: list[Scalar] | None = field(default_factory=list)
    config_node: Node | None = None


class _Linter:
    def __init__(self, path: str, strict: bool) -> None:
        self.path = path
        self.strict = strict
        self.findings: list[Finding] = []
        self.states_key: Scalar | None = None
        self.events: dict[str, Scalar] | None = None
        self.states: dict[str, _State] | None = None
        self.tasks: dict[str, _Task] | None = {}
        self.lifecycle: TimeLifecycle | None = None
        self.schedules: list[TimeSchedule] | None = []

    # -- reporting

    def report(self, node: Node, rule: str, message: str, severity: Severity = "error") -> None:
        self.findings.append(Finding(self.path, node.line, node.column, severity, rule, message))

    def warn(self, node: Node, rule: str, message: str) -> None:
        self.report(node, rule, message, "warning")

    def extension(self, key: Scalar, what: str) -> None:
        if self.strict:
            self.warn(key, "extension", f"{what} is a Statewright extension to Machine 1.0")

    def keys(
        self, mapping: MappingNode, accepted: tuple[str, ...], where: str
    ) -> list[tuple[str, Scalar, Node]]:
        """The pairs of ``mapping`` whose keys are accepted; the others are reported
        (``x-`` keys are extensions and skipped)."""
        kept: list[tuple[str, Scalar, Node]] = []
        listed = [*accepted, "x-*"]
        for key, value in mapping.pairs:
            name = key.name
            if isinstance(key.value, str) and name in accepted:
                kept.append((name, key, value))
                if name in EXTENSION_KEYS:
                    self.extension(key, f"`{name}`")
            elif name.startswith("x-"):
                self.extension(key, f"`{name}` (an x- key)")
            else:
                self.report(
                    key,
                    "unknown-key",
                    explain(
                        f"unknown key `{name}` {where}",
                        word=name,
                        candidates=accepted,
                        accepted=listed,
                    ),
                )
        return kept

    def wrong_type(self, node: Node, what: str, wanted: str) -> None:
        message = f"{what} must be {wanted}, not {kind_of(node)}"
        if isinstance(node, Scalar) and node.value is not None:
            message += f" ({shown(node.value)})"
        self.report(node, "type", message)

    def name_of(self, node: Node, what: str) -> Scalar | None:
        """A name written as a string (or a bare integer, like state `404`)."""
        if isinstance(node, Scalar) and (
            isinstance(node.value, str)
            or (isinstance(node.value, int) and not isinstance(node.value, bool))
        ):
            return node
        self.wrong_type(node, what, "a name (a string)")
        return None

    # -- the walk

    def walk(self, root: MappingNode) -> None:
        seen: dict[str, Node] = {}
        for name, key, value in self.keys(root, TOP_KEYS, "at the top level"):
            seen[name] = value
            if name == "version":
                self.version(value)
            elif name == "events":
                self.declared_events(value)
            elif name == "states":
                self.states_key = key
                self.all_states(value)
            elif name == "tasks":
                self.all_tasks(value)
            elif name == "lifecycle":
                self.lifecycle = read_lifecycle(self, key, value)
            elif name == "schedules":
                self.schedules = read_schedules(self, value)
        examples = {
            "version": "`version: 1.0`",
            "events": "a list of event names, e.g. `events: [LAUNCH, DESTROY]`",
            "states": "a mapping of state names to states, with an `INIT` state",
        }
        for required, example in examples.items():
            if required not in seen:
                self.report(root, "type", f"required key `{required}` is missing: add {example}")

    def version(self, node: Node) -> None:
        if not isinstance(node, Scalar) or node.value is None:
            self.wrong_type(node, "`version`", "1.0 (or 1)")
            return
        value = node.value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (number and value == 1) or value in ("1", "1.0"):
            return
        self.report(
            node,
            "unsupported-version",
            f"version {shown(value)} is not supported; this is Machine 1.0: write `version: 1.0`"
            " (or 1)",
        )

    def declared_events(self, node: Node) -> None:
        if not isinstance(node, SequenceNode):
            self.wrong_type(node, "`events`", "a list of event names, e.g. [LAUNCH, DESTROY]")
            return
        self.events = {}
        for item in node.items:
            scalar = self.name_of(item, "an event name")
            if scalar is None:
                continue
            name = scalar.name
            if name in SYSTEM_EVENTS:
                self.report(
                    scalar,
                    "reserved-event",
                    f"`{name}` is a system event the control plane fires; do not declare it "
                    "(states handle it under `on` without a declaration)",
                )
            elif not NAME_PATTERN.match(name):
                self.report(scalar, "event-name", _bad_name("event", name))
            if name in self.events:
                self.report(
                    scalar,
                    "duplicate-event",
                    f"event `{name}` is already declared at line {self.events[name].line}",
                )
                continue
            if name not in SYSTEM_EVENTS:
                self.events[name] = scalar

    def all_states(self, node: Node) -> None:
        if not isinstance(node, MappingNode):
            self.wrong_type(node, "`states`", "a mapping of state names to states")
            return
        self.states = {}
        for key, body in node.pairs:
            name = key.name
            if name.startswith("x-"):
                self.extension(key, f"`{name}` (an x- key)")
                continue
            if not NAME_PATTERN.match(name):
                self.report(key, "state-name", _bad_name("state", name))
            self.states[name] = self.state(key, body)

    def state(self, key: Scalar, body: Node) -> _State:
        state = _State(key)
        if isinstance(body, Scalar) and body.value is None:
            return state
        if not isinstance(body, MappingNode):
            self.wrong_type(body, f"state `{key.name}`", "a mapping (terminal, tasks, on)")
            state.terminal = state.tasks = state.handlers = None
            return state
        for name, _, value in self.keys(body, STATE_KEYS, f"in state `{key.name}`"):
            if name == "terminal":
                state.terminal = self.terminal(value)
            elif name == "tasks":
                state.tasks = self.task_names(value, "tasks", f"state `{key.name}`")
            elif name == "on":
                state.handlers = self.handlers(value, key.name)
            elif name == "description":
                state.description = self.description(value)
        return state

    def terminal(self, node: Node) -> bool | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        message = f"`terminal` must be true or false, not {kind_of(node)}"
        if isinstance(node, Scalar) and node.value is not None:
            message += f" ({shown(node.value)})"
        if isinstance(node, Scalar) and node.text in _YAML11_BOOLEANS:
            message += f"; in YAML 1.2 `{node.text}` is a string: write true or false"
        self.report(node, "type", message)
        return None

    def task_names(self, node: Node, key: str, owner: str) -> list[Scalar] | None:
        """A list of task names under ``key`` (a state's `tasks`, a task's `needs`)."""
        if isinstance(node, Scalar) and node.value is None:
            return []
        if not isinstance(node, SequenceNode):
            hint = f"e.g. `{key}: [{node.name}]`" if isinstance(node, Scalar) else "of task names"
            self.wrong_type(node, f"`{key}` of {owner}", f"a list ({hint})")
            return None
        names = [self.name_of(item, "a task name") for item in node.items]
        return [n for n in names if n is not None]

    def handlers(self, node: Node, state: str) -> dict[str, _Handler] | None:
        if isinstance(node, Scalar) and node.value is None:
            return {}
        if not isinstance(node, MappingNode):
            self.wrong_type(node, f"`on` of state `{state}`", "a mapping of events to actions")
            return None
        handlers: dict[str, _Handler] = {}
        for key, value in node.pairs:
            event = key.name
            if event.startswith("x-"):
                self.extension(key, f"`{event}` (an x- key)")
                continue
            if event == "FAILED":
                self.extension(key, "handling `FAILED`")
            handlers[event] = _Handler(key, self.actions(value, state, event))
        return handlers

    def actions(self, node: Node, state: str, event: str) -> list[_Action] | None:
        if isinstance(node, Scalar) and node.value is None:
            return []
        if not isinstance(node, SequenceNode):
            self.wrong_type(
                node,
                f"the `{event}` handler of state `{state}`",
                "a list of actions, e.g. `- {action: advance, state: RUN}`",
            )
            return None
        actions: list[_Action] = []
        advances = 0
        for item in node.items:
            action = self.action(item, state, event)
            if action is None:
                continue
            actions.append(action)
            if action.action == "advance":
                advances += 1
                if advances > 1:
                    self.report(
                        item,
                        "multiple-advance",
                        f"the `{event}` handler of state `{state}` already advances; "
                        "a handler holds at most one `advance`",
                    )
        return actions

    def action(self, node: Node, state: str, event: str) -> _Action | None:  # noqa: C901 — one check per key of an action, in the format's order
        if not isinstance(node, MappingNode):
            hint = ""
            if isinstance(node, Scalar) and node.name in ACTIONS:
                hint = f" (write `- action: {node.name}`)"
            self.wrong_type(node, "an action", f"a mapping with `action`{hint}")
            return None
        action = _Action(node)
        state_pair: tuple[Scalar, Node] | None = None
        for name, key, value in self.keys(node, ACTION_KEYS, "in an action"):
            if name == "action":
                action.action = self.action_name(value)
            elif name == "state":
                state_pair = (key, value)
        if "action" not in {k.name for k, _ in node.pairs}:
            self.report(node, "type", "an action needs `action: advance` or `action: no-op`")
        written = state_pair is not None and not (
            isinstance(state_pair[1], Scalar) and state_pair[1].value is None
        )
        target: Scalar | None = None
        if state_pair is not None and written:
            target = self.name_of(state_pair[1], "the target `state`")
        if action.action == "advance":
            if not written:
                self.report(
                    node,
                    "advance-target",
                    f"`advance` needs a target `state:` (in the `{event}` handler of `{state}`)",
                )
            action.target = target
        elif action.action is None:
            # Misspelt action: its target still tells where the author meant to go, so
            # the graph warnings do not pile onto the one real mistake.
            action.target = target
        elif action.action == "no-op" and state_pair is not None:
            self.report(
                state_pair[0],
                "advance-target",
                "a `no-op` action takes no `state`; remove it or use `action: advance`",
            )
        return action

    def action_name(self, node: Node) -> str | None:
        if isinstance(node, Scalar) and node.value is not None:
            name = node.name
            if isinstance(node.value, str) and name in ACTIONS:
                return name
            self.report(
                node,
                "unknown-action",
                explain(
                    f"unknown action {shown(node.value)}",
                    word=name,
                    candidates=ACTIONS,
                    accepted=ACTIONS,
                ),
            )
            return None
        self.wrong_type(node, "`action`", "advance or no-op")
        return None

    def description(self, node: Node) -> str | None:
        if isinstance(node, Scalar) and isinstance(node.value, str):
            return node.value
        self.wrong_type(node, "`description`", "a string")
        return None

    def all_tasks(self, node: Node) -> None:
        if isinstance(node, Scalar) and node.value is None:
            return
        if not isinstance(node, MappingNode):
            self.wrong_type(node, "`tasks`", "a mapping of task names to tasks")
            self.tasks = None
            return
        tasks: dict[str, _Task] = {}
        for key, body in node.pairs:
            name = key.name
            if name.startswith("x-"):
                self.extension(key, f"`{name}` (an x- key)")
                continue
            if not TASK_NAME_PATTERN.match(name):
                self.report(
                    key,
                    "task-name",
                    f"task name {shown(name)} must match {rules.TASK_NAME_PATTERN} (letters, "
                    "digits, `_` and `-`, at most 64; no `.`, `/` or space, so a name never "
                    "forms a path), e.g. db-setup",
                )
            tasks[name] = self.task(key, body)
        self.tasks = tasks

    def task(self, key: Scalar, body: Node) -> _Task:  # noqa: C901, PLR0912 — one branch per key of a task, the format's own list
        task = _Task(key)
        if not isinstance(body, MappingNode):
            self.wrong_type(body, f"task `{key.name}`", "a mapping with `executor` and `config`")
            return task
        config: tuple[Scalar, Node] | None = None
        for name, k, value in self.keys(body, TASK_KEYS, f"in task `{key.name}`"):
            if name == "executor":
                task.executor = self.executor(value)
            elif name == "config":
                config = (k, value)
                task.config_node = value
            elif name == "needs":
                task.needs = self.task_names(value, "needs", f"task `{key.name}`")
            elif name == "retry":
                task.retry = self.retry(value)
            elif name == "timeout_seconds":
                task.timeout_seconds = self.timeout(value)
            elif name == "cancel":
                task.cancel = self.cancel(value)
            elif name == "description":
                task.description = self.description(value)
        if body.pair("executor") is None:
            accepted = ", ".join(registry())
            self.report(key, "type", f"task `{key.name}` needs `executor` (one of: {accepted})")
        if config is not None:
            for config_key, _ in config[1].pairs if isinstance(config[1], MappingNode) else []:
                if config_key.name.startswith("x-"):
                    self.extension(config_key, f"`{config_key.name}` (an x- key)")
        if task.executor is not None:
            plugin = registry()[task.executor]
            anchor = config[0] if config else key
            for node, message in config_problems(plugin, config[1] if config else None, anchor):
                self.report(node, plugin.rule, message)
            task.config = strip_extensions(config[1] if config else None)
        return task

    def executor(self, node: Node) -> str | None:
        if not isinstance(node, Scalar) or node.value is None:
            self.wrong_type(node, "`executor`", "the name of an executor")
            return None
        known = list(registry())
        if node.name in known and isinstance(node.value, str):
            return node.name
        self.report(
            node,
            "executor",
            explain(
                f"unknown executor {shown(node.value)}",
                word=node.name,
                candidates=known,
                accepted=known,
            ),
        )
        return None

    def retry(self, node: Node) -> dict[str, Any] | None:
        if not isinstance(node, MappingNode):
            self.wrong_type(node, "`retry`", "a mapping like `{attempts: 3, backoff_seconds: 10}`")
            return None
        retry: dict[str, Any] = {}
        valid = True
        for name, _, value in self.keys(node, RETRY_KEYS, "in `retry`"):
            if name == "attempts":
                attempts = _int_value(value)
                if attempts is not None and 1 <= attempts <= MAX_ATTEMPTS:
                    retry[name] = attempts
                    continue
                message = (
                    "`retry.attempts` counts every attempt, the first included: a whole number "
                    f"from 1 to {MAX_ATTEMPTS}, not {_described(value)}"
                )
            else:
                backoff = _number_value(value)
                if backoff is not None and 0 <= backoff <= MAX_BACKOFF_SECONDS:
                    retry[name] = backoff
                    continue
                message = (
                    "`retry.backoff_seconds` must be a number of seconds from 0 to "
                    f"{MAX_BACKOFF_SECONDS}, not {_described(value)}"
                )
            valid = False
            self.report(value, "type", message)
        return retry if valid else None

    def timeout(self, node: Node) -> int | None:
        seconds = _int_value(node)
        if seconds is not None and seconds >= 1:
            return seconds
        self.report(
            node,
            "type",
            "`timeout_seconds` must be a whole number of seconds, at least 1, "
            f"not {_described(node)}",
        )
        return None

    def cancel(self, node: Node) -> str | None:
        if isinstance(node, Scalar) and node.value in CANCEL_MODES:
            return str(node.value)
        self.report(
            node,
            "type",
            explain(
                f"`cancel` must be `graceful` (a run that keeps state, such as Terraform's, "
                f"finishes when its state is left; the default) or `force` (it is stopped), "
                f"not {_described(node)}",
                word=str(node.value) if isinstance(node, Scalar) else None,
                candidates=CANCEL_MODES,
            ),
        )
        return None

    # -- references between the parts

    def cross_check(self) -> None:
        if self.states is None:
            return
        states = self.states
        assert self.states_key is not None
        if rules.INIT_STATE not in states:
            self.report(
                self.states_key,
                "missing-init",
                explain(
                    "there is no `INIT` state; a machine starts in INIT",
                    word=rules.INIT_STATE,
                    candidates=list(states),
                ),
            )
        terminal_known = all(s.terminal is not None for s in states.values())
        if terminal_known and not any(s.terminal for s in states.values()):
            self.report(
                self.states_key,
                "no-terminal",
                "no state has `terminal: true`; a machine is deleted when it completes a "
                "terminal state, so at least one is needed",
            )
        check_needs(self)
        check_references(self)
        check_saved_plans(self)
        check_next_cycle(self)
        for name, state in states.items():
            self.check_state_tasks(name, state)
            self.check_handlers(name, state)
            if (
                state.terminal is False
                and state.tasks
                and state.handlers is not None
                and "NEXT" not in state.handlers
            ):
                self.report(
                    state.key,
                    "missing-next",
                    f"state `{name}` has tasks but no `NEXT` handler, so the machine stays "
                    f"here when they succeed; add `on: {{NEXT: [{{action: advance, state: ...}}]}}`"
                    " or make it terminal",
                )

    def check_state_tasks(self, name: str, state: _State) -> None:
        listed: set[str] = set()
        for item in state.tasks or []:
            task = item.name
            if task in listed:
                self.report(
                    item, "duplicate-task", f"task `{task}` is listed twice in state `{name}`"
                )
                continue
            listed.add(task)
            if self.tasks is not None and task not in self.tasks:
                defined = list(self.tasks)
                self.report(
                    item,
                    "unknown-task",
                    explain(
                        f"task `{task}` is not defined under the top-level `tasks`",
                        word=task,
                        candidates=defined,
                        accepted=defined,
                    ),
                )

    def check_handlers(self, name: str, state: _State) -> None:
        assert self.states is not None
        for event, handler in (state.handlers or {}).items():
            if self.events is not None and event not in self.events and event not in SYSTEM_EVENTS:
                accepted = [*self.events, *SYSTEM_EVENTS]
                self.report(
                    handler.key,
                    "unknown-event",
                    explain(
                        f"`{event}` in state `{name}` is not a declared event (declare it under "
                        "`events`)",
                        word=event,
                        candidates=accepted,
                        accepted=accepted,
                    ),
                )
            for action in handler.actions or []:
                target = action.target
                if target is not None and target.name not in self.states:
                    self.report(
                        target,
                        "advance-target",
                        explain(
                            f"`advance` targets state `{target.name}`, which does not exist",
                            word=target.name,
                            candidates=list(self.states),
                            accepted=list(self.states),
                        ),
                    )

    # -- warnings about the graph as a whole

    def warn_about_handlers(self) -> None:
        for name, state in (self.states or {}).items():
            for event, handler in (state.handlers or {}).items():
                if state.terminal and event == "NEXT":
                    self.warn(
                        handler.key,
                        "terminal-next",
                        f"terminal state `{name}` handles `NEXT`, which never fires there: the "
                        "machine is deleted when a terminal state is satisfied",
                    )
                if handler.actions == []:
                    self.warn(
                        handler.key,
                        "empty-handler",
                        f"the `{event}` handler of state `{name}` has no actions; it accepts "
                        "the event and does nothing (write `- action: no-op` to say so)",
                    )

    def warn_about_graph(self) -> None:
        """Warnings about the spec as a whole; only called on a spec without errors, so
        every part of it is known."""
        states, events, tasks = self.states, self.events, self.tasks
        if states is None or events is None or tasks is None:
            return
        self._warn_unhandled_events(states, events)
        self._warn_unused_tasks(states, tasks)
        self._warn_dead_states(states)

    def _warn_unhandled_events(self, states: dict[str, _State], events: dict[str, Scalar]) -> None:
        handled = {event for state in states.values() for event in state.handlers or {}}
        for event, node in events.items():
            if event not in handled:
                self.warn(
                    node, "unhandled-event", f"event `{event}` is declared but no state handles it"
                )

    def _warn_unused_tasks(self, states: dict[str, _State], tasks: dict[str, _Task]) -> None:
        used = {task.name for state in states.values() for task in state.tasks or []}
        for name, task in tasks.items():
            if name not in used:
                self.warn(task.key, "unused-task", f"task `{name}` is listed by no state")

    def _warn_dead_states(self, states: dict[str, _State]) -> None:
        """States INIT cannot reach, and reachable states no terminal state can be
        reached from (a machine there is never deleted)."""
        edges = {
            name: {
                action.target.name
                for handler in (state.handlers or {}).values()
                for action in handler.actions or []
                if action.target is not None
            }
            for name, state in states.items()
        }
        reachable = _closure([rules.INIT_STATE], edges)
        reverse: dict[str, set[str]] = {name: set() for name in states}
        for source, targets in edges.items():
            for target in targets:
                reverse[target].add(source)
        finishing = _closure([name for name, state in states.items() if state.terminal], reverse)
        for name, state in states.items():
            if name not in reachable:
                self.warn(
                    state.key, "unreachable-state", f"state `{name}` cannot be reached from INIT"
                )
        for name, state in states.items():
            if name in reachable and name not in finishing:
                self.warn(
                    state.key,
                    "no-path-to-terminal",
                    f"no terminal state can be reached from state `{name}`; a machine that "
                    "gets there is never deleted",
                )

    # -- the normalized spec

    def build(self, root: MappingNode, name: str, base_dir: str | None) -> Spec | None:
        assert self.states is not None and self.events is not None and self.tasks is not None
        document: dict[str, Any] = {
            "name": name,
            "version": SPEC_VERSION,
            "events": list(self.events),
            "states": {
                state_name: _drop_none(
                    {
                        "terminal": bool(state.terminal),
                        "tasks": [t.name for t in state.tasks or []],
                        "on": {
                            event: [
                                _drop_none(
                                    {
                                        "action": a.action,
                                        "state": a.target.name if a.target else None,
                                    }
                                )
                                for a in handler.actions or []
                            ]
                            for event, handler in (state.handlers or {}).items()
                        },
                        "description": state.description,
                    }
                )
                for state_name, state in self.states.items()
            },
            "tasks": {
                task_name: _drop_none(
                    {
                        "executor": task.executor,
                        "config": task.config if isinstance(task.config, dict) else {},
                        "needs": [n.name for n in task.needs] if task.needs else None,
                        "retry": task.retry,
                        "timeout_seconds": task.timeout_seconds,
                        "cancel": task.cancel,
                        "description": task.description,
                    }
                )
                for task_name, task in self.tasks.items()
            },
            "lifecycle": self.lifecycle.document if self.lifecycle else None,
            "schedules": [s.document for s in self.schedules or []] or None,
            "base_dir": base_dir,
        }
        try:
            return Spec.model_validate(document)
        except ValidationError as exc:
            # The walk should have reported anything the models refuse; if it did not,
            # the spec is still refused, with the models' own words.
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                self.report(root, "type", f"`{where}`: {error['msg']}")
            return None


def _bad_name(what: str, name: str) -> str:
    return (
        f"{what} name `{name}` must match {rules.NAME_PATTERN} (capital letters, digits, "
        "`_` and `-`, e.g. PROVISION or MARK_ACCESS)"
    )


def _int_value(node: Node) -> int | None:
    value = node.value if isinstance(node, Scalar) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number_value(node: Node) -> float | None:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def _described(node: Node) -> str:
    if isinstance(node, Scalar) and node.value is not None:
        return shown(node.value)
    return kind_of(node)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _closure(start: list[str], edges: dict[str, set[str]]) -> set[str]:
    seen = set(start)
    queue = deque(start)
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen
