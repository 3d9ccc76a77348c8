"""A reference model of the runtime semantics of docs/runtime.md — written from that
page, in plain Python, without
importing the engine or the service.

The model keeps what a user can see of each machine: its state, previous state, epoch,
status, metadata, task records and the history entries that do not depend on timing
(everything but ``task_started``, whose source and count depend on crashes and
recoveries). A task's ``pending`` and ``running`` are one status here, ``active``: the
difference is whether the executor's start has been recorded yet, which a crash may or
may not leave behind — both are correct, and recovery takes either one forward.

Each input returns a :class:`Step`: the outcome (``applied``, ``stale``, ``duplicate``,
``refused``, or an API error code), whether the input costs a write, the NEXT/FAILED
events it publishes and the task attempts it schedules.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SYSTEM_EVENTS = ("NEXT", "FAILED")
ACTIVE = "active"  # pending or running

# API error codes (docs/api.md#one-code-path); on the bus every one of them is "refused".
RESERVED_EVENT = "reserved_event"
UNKNOWN_EVENT = "unknown_event"
INVALID_METADATA = "invalid_metadata"
NOT_ACCEPTED = "event_not_accepted"
NOT_FOUND = "machine_not_found"
EXISTS = "machine_exists"
NOTHING_TO_RETRY = "nothing_to_retry"
INVALID_REQUEST = "invalid_request"

APPLIED, STALE, DUPLICATE, REFUSED = "applied", "stale", "duplicate", "refused"


@dataclass
class TaskModel:
    status: str
    attempt: int
    epoch: int
    state: str
    output: Any = None
    error: str | None = None

    def view(self) -> tuple[Any, ...]:
        return (self.status, self.attempt, self.epoch, self.state, self.output, self.error)


@dataclass
class MachineModel:
    id: str
    state: str = "INIT"
    previous_state: str | None = None
    epoch: int = 1
    status: str = "running"
    metadata: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskModel] = field(default_factory=dict)
    # "the epoch whose NEXT/FAILED was published" and "... applied" (runtime.md,
    # Satisfied, NEXT and FAILED: once per epoch; a repeat is a duplicate).
    published: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    history: list[tuple[Any, ...]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """What the store's machine must equal (see ``project`` in the harness)."""
        return {
            "state": self.state,
            "previous_state": self.previous_state,
            "epoch": self.epoch,
            "status": self.status,
            "metadata": dict(self.metadata),
            "tasks": {name: task.view() for name, task in self.tasks.items()},
        }


@dataclass
class Step:
    """What one input did, according to the model."""

    outcome: str
    writes: bool = False
    publishes: list[tuple[str, str, int]] = field(default_factory=list)  # machine, event, epoch
    schedules: list[tuple[str, str, int, int]] = field(default_factory=list)  # id, task, epoch, n
    deleted: bool = False


class Refusal(Exception):
    """The input is refused with this error code; nothing changes."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def flat_metadata(metadata: Any) -> dict[str, Any]:
    """docs/runtime.md#metadata: a flat JSON object of strings, numbers, booleans and nulls."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise Refusal(INVALID_METADATA)
    for value in metadata.values():
        if isinstance(value, float) and not math.isfinite(value):
            raise Refusal(INVALID_METADATA)
        if value is not None and not isinstance(value, str | int | float | bool):
            raise Refusal(INVALID_METADATA)
    return dict(metadata)


class Model:
    """Every machine of one spec (a plain dict in the Machine 1.0 shape)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.machines: dict[str, MachineModel] = {}
        self.transitions = 0  # states entered, over every machine

    # ---- the spec, read plainly --------------------------------------------------------

    def _state(self, name: str) -> Mapping[str, Any]:
        state: Mapping[str, Any] = self.spec["states"][name]
        return state

    def _on(self, state: str) -> Mapping[str, list[Mapping[str, Any]]]:
        on: Mapping[str, list[Mapping[str, Any]]] = self._state(state).get("on", {})
        return on

    def _tasks_of(self, state: str) -> list[str]:
        return list(self._state(state).get("tasks", []))

    def _attempts(self, task: str) -> int:
        retry = self.spec["tasks"][task].get("retry")
        return int(retry["attempts"]) if retry else 1

    # ---- inputs ------------------------------------------------------------------------

    def create(self, machine_id: str, metadata: Any = None) -> Step:
        """docs/runtime.md#machines: INIT at epoch 1, INIT's tasks started. The request
        itself is checked (its metadata) before the id is looked up."""
        try:
            clean = flat_metadata(metadata)
        except Refusal as refusal:
            return Step(refusal.code)
        if machine_id in self.machines:
            return Step(EXISTS)
        m = MachineModel(id=machine_id, metadata=clean)
        step = Step(APPLIED, writes=True)
        m.history.append(("created", 1, "INIT"))
        for task in self._tasks_of("INIT"):
            self._schedule(m, task, 1, step)
        self.machines[machine_id] = m
        self._settle(m, step)
        return step

    def external(
        self, machine_id: str, event: str, metadata: Any = None, spec: str | None = None
    ) -> Step:
        """docs/runtime.md#external-events, with its order of checks. With ``spec``
        an absent machine is created in the same write (nothing when refused)."""
        m = self.machines.get(machine_id)
        try:
            if m is None and spec is None:
                raise Refusal(NOT_FOUND)
            if event in SYSTEM_EVENTS:
                raise Refusal(RESERVED_EVENT)
            if event not in self.spec["events"]:
                raise Refusal(UNKNOWN_EVENT)
            clean = flat_metadata(metadata)
            state = m.state if m is not None else "INIT"
            if event not in self._on(state):
                raise Refusal(NOT_ACCEPTED)
        except Refusal as refusal:
            return Step(refusal.code)
        step = Step(APPLIED, writes=True)
        if m is None:
            created = self.create(machine_id)
            m = self.machines[machine_id]
            step.schedules += created.schedules
            step.publishes += created.publishes
        m.metadata.update(clean)
        m.history.append(("event", m.epoch, m.state, event))
        self._run_actions(m, event, step)
        return step

    def system(self, machine_id: str, event: str, epoch: int) -> Step:
        """A NEXT or FAILED coming back from the bus (runtime.md, Applying NEXT/FAILED)."""
        m = self.machines.get(machine_id)
        if m is None:
            return Step(REFUSED)
        if epoch != m.epoch:
            return Step(DUPLICATE if m.applied.get(event) == epoch else STALE)
        if event not in self._on(m.state):
            return Step(REFUSED)
        if m.applied.get(event) == epoch:
            return Step(DUPLICATE)
        if event == "NEXT" and not self._satisfied(m):
            return Step(STALE)
        if event == "FAILED" and m.status != "failed":
            return Step(STALE)
        step = Step(APPLIED, writes=True)
        m.applied[event] = epoch
        m.history.append(("event", m.epoch, m.state, event))
        self._run_actions(m, event, step)
        return step

    def task_finished(
        self, machine_id: str, task: str, epoch: int, attempt: int, status: str, output: Any
    ) -> Step:
        """runtime.md, Tasks/Results: only the current epoch's current attempt counts."""
        m = self.machines.get(machine_id)
        if m is None:
            return Step(REFUSED)
        if epoch != m.epoch:
            return Step(STALE)
        record = m.tasks.get(task)
        if record is None or record.epoch != m.epoch:
            return Step(REFUSED)
        if attempt != record.attempt:
            return Step(STALE)
        if record.status != ACTIVE:
            return Step(DUPLICATE)
        step = Step(APPLIED, writes=True)
        self._finish(m, task, status, output, step)
        return step

    def retry(self, machine_id: str) -> Step:
        """POST /machines/{id}/retry: the failed tasks of the current state, attempt + 1."""
        m = self.machines.get(machine_id)
        if m is None:
            return Step(NOT_FOUND)
        failed = [n for n, t in m.tasks.items() if t.epoch == m.epoch and t.status == "failed"]
        if not failed:
            return Step(NOTHING_TO_RETRY)
        step = Step(APPLIED, writes=True)
        # A FAILED published before the retry no longer applies.
        m.published.pop("FAILED", None)
        m.applied.pop("FAILED", None)
        m.history.append(("retry", m.epoch, m.state))
        for name in self._tasks_of(m.state):
            if name in failed:
                self._schedule(m, name, m.tasks[name].attempt + 1, step)
        self._settle(m, step)
        return step

    def recovery_publishes(self) -> list[tuple[str, str, int]]:
        """What recovery publishes again (runtime.md, Recovery): the NEXT of a satisfied
        state and the FAILED of a failed one, not yet applied, for machines that are not
        ``waiting``."""
        wanted = []
        for m in self.machines.values():
            if m.status == "waiting":
                continue
            state = self._state(m.state)
            if (
                "NEXT" in self._on(m.state)
                and not state.get("terminal")
                and m.applied.get("NEXT") != m.epoch
                and self._satisfied(m)
            ):
                wanted.append((m.id, "NEXT", m.epoch))
            if (
                "FAILED" in self._on(m.state)
                and m.applied.get("FAILED") != m.epoch
                and m.status == "failed"
            ):
                wanted.append((m.id, "FAILED", m.epoch))
        return wanted

    def would_write(self, kind: str, *args: Any) -> bool:
        """Whether an input would cost a write now (on a copy: nothing changes)."""
        probe = copy.deepcopy(self)
        step: Step = getattr(probe, kind)(*args)
        return step.writes

    # ---- entering states, tasks, satisfied states (docs/runtime.md) ----------------------

    def _run_actions(self, m: MachineModel, event: str, step: Step) -> None:
        actions = self._on(m.state)[event]
        target = next((a["state"] for a in actions if a.get("action") == "advance"), None)
        if target is None:
            self._settle(m, step)  # no-op, or an empty handler
        else:
            self._enter(m, target, event, step)

    def _enter(self, m: MachineModel, target: str, event: str, step: Step) -> None:
        for name, task in m.tasks.items():
            if task.epoch == m.epoch and task.status == ACTIVE:
                task.status = "cancelled"
                m.history.append(("task_cancelled", m.epoch, m.state, name, task.attempt))
        m.previous_state, m.state = m.state, target
        m.epoch += 1
        self.transitions += 1
        m.history.append(("transition", m.epoch, target, event, m.previous_state))
        for name in self._tasks_of(target):
            self._schedule(m, name, 1, step)
        self._settle(m, step)

    def _schedule(self, m: MachineModel, task: str, attempt: int, step: Step) -> None:
        m.tasks[task] = TaskModel(ACTIVE, attempt, m.epoch, m.state)
        step.schedules.append((m.id, task, m.epoch, attempt))

    def _finish(self, m: MachineModel, task: str, status: str, output: Any, step: Step) -> None:
        record = m.tasks[task]
        record.status = status
        record.output = output
        record.error = None if status == "succeeded" else f"{task} failed"
        m.history.append(("task_finished", m.epoch, m.state, task, record.attempt, status))
        if status == "failed" and record.attempt < self._attempts(task):
            self._schedule(m, task, record.attempt + 1, step)
        self._settle(m, step)

    def _satisfied(self, m: MachineModel) -> bool:
        return all(
            name in m.tasks
            and m.tasks[name].epoch == m.epoch
            and m.tasks[name].status == "succeeded"
            for name in self._tasks_of(m.state)
        )

    def _settle(self, m: MachineModel, step: Step) -> None:
        """docs/runtime.md#satisfied-next-and-failed and its status rules."""
        on = self._on(m.state)
        current_failed = any(
            m.tasks[n].epoch == m.epoch and m.tasks[n].status == "failed"
            for n in self._tasks_of(m.state)
            if n in m.tasks
        )
        if current_failed:
            m.status = "failed"
            if "FAILED" in on and m.applied.get("FAILED") != m.epoch:
                self._publish_once(m, "FAILED", step)
        elif self._satisfied(m):
            if self._state(m.state).get("terminal"):
                del self.machines[m.id]
                step.deleted = True
            elif "NEXT" in on and m.applied.get("NEXT") != m.epoch:
                m.status = "running"  # NEXT in flight: the transition is not over
                self._publish_once(m, "NEXT", step)
            else:
                m.status = "waiting"
        else:
            m.status = "running"

    def _publish_once(self, m: MachineModel, event: str, step: Step) -> None:
        if m.published.get(event) != m.epoch:
            m.published[event] = m.epoch
            step.publishes.append((m.id, event, m.epoch))
