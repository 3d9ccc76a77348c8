"""A dry run of a spec: the states and tasks a sequence of external events leads to.

It follows the runtime semantics of docs/runtime.md without any I/O: a machine is created
in INIT, tasks are assumed to succeed (or, for the names given as failing, to fail
after their retries), a satisfied state fires NEXT, a failed task fires FAILED when the
state handles it, and a satisfied terminal state deletes the machine. Events the real
control plane would refuse are refused here with the same error codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from statewright.spec.models import Spec

CREATE = "(create)"
# A spec whose states fire NEXT into each other forever would never settle.
MAX_SYSTEM_STEPS = 100

Status = Literal["running", "waiting", "failed", "deleted"]


@dataclass(frozen=True)
class Step:
    """One event applied (or refused). ``target`` is the state entered, None when the
    event changed no state; ``state``/``status`` are the machine's after the step."""

    event: str
    source: str | None
    target: str | None
    epoch: int
    state: str | None
    status: Status
    system: bool = False
    started: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    refused: str | None = None
    message: str = ""


@dataclass
class Simulation:
    steps: list[Step] = field(default_factory=list)
    state: str | None = "INIT"
    status: Status = "running"
    epoch: int = 1

    @property
    def refused(self) -> list[Step]:
        return [step for step in self.steps if step.refused]

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [asdict(step) for step in self.steps],
            "state": self.state,
            "status": self.status,
            "epoch": self.epoch,
        }


class _Run:
    def __init__(self, spec: Spec, failing: frozenset[str]) -> None:
        self.spec = spec
        self.failing = failing
        self.sim = Simulation()
        self.failed_now: tuple[str, ...] = ()

    def create(self) -> None:
        started, failed = self.enter("INIT")
        self.record(CREATE, None, "INIT", started=started, failed=failed)
        self.settle()

    def enter(self, state: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        self.sim.state = state
        tasks = tuple(self.spec.states[state].tasks)
        failed = tuple(t for t in tasks if t in self.failing)
        self.failed_now = failed
        if failed:
            self.sim.status = "failed"
        elif self.spec.states[state].terminal:
            self.sim.status = "deleted"
        else:
            self.sim.status = "waiting"
        return tasks, failed

    def record(self, event: str, source: str | None, target: str | None, **kw: Any) -> None:
        state = None if self.sim.status == "deleted" else self.sim.state
        self.sim.steps.append(
            Step(event, source, target, self.sim.epoch, state, self.sim.status, **kw)
        )
        self.sim.state = state

    def apply(self, event: str, *, system: bool) -> None:
        """Run the current state's handler of ``event`` (it exists)."""
        source = self.sim.state
        assert source is not None
        entered: str | None = None
        started: tuple[str, ...] = ()
        failed: tuple[str, ...] = ()
        for action in self.spec.states[source].on[event]:
            if action.action == "advance" and action.state is not None:
                self.sim.epoch += 1
                entered = action.state
                started, failed = self.enter(action.state)
        self.record(event, source, entered, system=system, started=started, failed=failed)

    def settle(self) -> None:
        """Fire NEXT/FAILED while the current state calls for one."""
        for _ in range(MAX_SYSTEM_STEPS):
            state = self.sim.state
            if self.sim.status == "deleted" or state is None:
                return
            handlers = self.spec.states[state].on
            before = self.sim.epoch
            if self.sim.status == "failed" and self.failed_now and "FAILED" in handlers:
                self.failed_now = ()
                self.apply("FAILED", system=True)
            elif self.sim.status == "waiting" and "NEXT" in handlers:
                self.apply("NEXT", system=True)
            else:
                return
            if self.sim.epoch == before:
                # A no-op NEXT/FAILED handler: the machine stays and waits.
                return
        self.sim.steps.append(
            Step(
                "NEXT",
                self.sim.state,
                None,
                self.sim.epoch,
                self.sim.state,
                self.sim.status,
                system=True,
                refused="next_loop",
                message=f"NEXT keeps firing after {MAX_SYSTEM_STEPS} transitions; "
                "states without tasks advance into each other forever",
            )
        )

    def external(self, event: str) -> None:
        state = self.sim.state
        refusal = self.refusal(event)
        if refusal is not None:
            code, message = refusal
            shown = None if self.sim.status == "deleted" else state
            self.sim.steps.append(
                Step(
                    event,
                    shown,
                    None,
                    self.sim.epoch,
                    shown,
                    self.sim.status,
                    refused=code,
                    message=message,
                )
            )
            return
        before = self.sim.epoch
        self.apply(event, system=False)
        if self.sim.epoch != before:
            # NEXT and FAILED fire on entering a state, never on a no-op.
            self.settle()

    def refusal(self, event: str) -> tuple[str, str] | None:
        if event in ("NEXT", "FAILED"):
            return "reserved_event", f"{event} is a system event and is never accepted from outside"
        if event not in self.spec.events:
            declared = ", ".join(self.spec.events) or "none"
            return "unknown_event", f"{event} is not declared by the spec; declared: {declared}"
        if self.sim.status == "deleted":
            return "machine_not_found", "the machine was deleted when it completed a terminal state"
        state = self.sim.state
        assert state is not None
        if event not in self.spec.states[state].on:
            accepted = ", ".join(self.spec.accepted_events(state)) or "nothing"
            return (
                "event_not_accepted",
                f"{event} is not accepted in state {state}; accepted there: {accepted}",
            )
        return None


def simulate(spec: Spec, events: Iterable[str], failing: Iterable[str] = ()) -> Simulation:
    """Create a machine of ``spec`` and apply ``events`` in order. Tasks named in
    ``failing`` fail (after their retries); every other task succeeds."""
    run = _Run(spec, frozenset(failing))
    run.create()
    for event in events:
        run.external(event)
    return run.sim


def describe(spec: Spec, sim: Simulation) -> list[str]:
    """The simulation as lines for a person."""
    lines: list[str] = []
    for index, step in enumerate(sim.steps):
        indent = "  " if step.system else ""
        if step.refused:
            where = f" in {step.source}" if step.source else ""
            lines.append(f"{indent}{step.event}: refused{where} ({step.refused}): {step.message}")
            continue
        if step.event == CREATE:
            lines.append(f"created in {step.target} (epoch {step.epoch})")
        elif step.target is None:
            lines.append(f"{indent}{step.event}: accepted in {step.source}, no state change")
        else:
            lines.append(
                f"{indent}{step.event}: {step.source} -> {step.target} (epoch {step.epoch})"
            )
        for task in step.started:
            outcome = "fails" if task in step.failed else "succeeds"
            executor = spec.tasks[task].executor if task in spec.tasks else "?"
            lines.append(f"{indent}  task {task} ({executor}) {outcome}")
        following = sim.steps[index + 1] if index + 1 < len(sim.steps) else None
        if following is not None and following.system:
            continue
        lines.append(f"  {_status_line(spec, step)}")
    return lines


def _status_line(spec: Spec, step: Step) -> str:
    if step.status == "deleted":
        return "terminal state satisfied: the machine is deleted"
    state = step.state
    assert state is not None
    accepted = ", ".join(e for e in spec.accepted_events(state) if e not in ("NEXT", "FAILED"))
    accepts = f"accepts {accepted}" if accepted else "accepts no external event"
    if step.status == "failed":
        return f"failed in {state} (POST /machines/{{id}}/retry re-runs the tasks); {accepts}"
    return f"waits in {state}; {accepts}"
