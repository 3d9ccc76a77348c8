"""A dry run of a spec on the engine itself (statewright.engine): the states and tasks a
sequence of external events leads to.

The simulator plays the service with an executor whose results it chooses: every task
succeeds (with no output), except those named as failing, which fail every attempt.
Everything else — which tasks start and in what order (`needs`), retries, NEXT and
FAILED, deletion, refusals and their error codes, the stop of an endless NEXT loop — is
the engine's own decision, so `simulate` and a real run cannot disagree. References are
left as written: the service resolves them when an attempt starts, and a dry run has no
outputs to resolve them with.

Time stands still while the events apply; ``advance`` then lets it pass, firing the
timers the engine armed in their order: a lifecycle's warnings and expiry (and the
expire event they send), each at its due time."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

from statewright import engine, expiry
from statewright.durations import format_duration
from statewright.engine import (
    ArmTimer,
    Create,
    Decision,
    DisarmTimer,
    ExpireEvent,
    ExternalEvent,
    InternalEvent,
    Outcome,
    Publish,
    StartReport,
    StartTask,
    TaskFinished,
    TasksStarted,
    TimerFired,
)
from statewright.errors import StatewrightError
from statewright.executors.registry import registry
from statewright.model import Machine, TaskFinishedDetail, format_time, parse_time
from statewright.spec.models import Spec
from statewright.spec.references import ReferenceSyntaxError, references_in
from statewright.spec.rules import INIT_STATE, SYSTEM_EVENTS
from statewright.timers import Timer, TimerPurpose

CREATE = "(create)"
# Steps of time passing (simulate(..., advance=...)): a warning before expiry, expiry.
EXPIRING = "(expiring)"
EXPIRED = "(expired)"
TIMER_STEPS = (EXPIRING, EXPIRED)
SIMULATED_NOW = "2026-01-01T00:00:00.000Z"
# A bound on the inputs one external event may cause (the engine halts NEXT loops far
# below it); reaching it would be a bug, reported as a refusal rather than a hang.
MAX_INPUTS_PER_EVENT = 10_000

Status = Literal["running", "waiting", "failed", "deleted"]


@dataclass(frozen=True)
class Step:
    """One event applied (or refused). ``target`` is the state entered, None when the
    event changed no state; ``state``/``status`` are the machine's after the step and
    the task results it led to; ``started`` lists the tasks started, in the order they
    started, and ``failed`` those that failed after their retries."""

    event: str
    source: str | None
    target: str | None
    epoch: int
    state: str | None
    status: Status
    system: bool = False
    started: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    refused: str | None = None
    message: str = ""
    # Seconds since creation, for a step of time passing (and what it led to).
    after: int | None = None


@dataclass
class Simulation:
    steps: list[Step] = field(default_factory=list)
    state: str | None = INIT_STATE
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


@dataclass
class _Open:
    """The step being written: what its event started and what failed since."""

    event: str
    source: str | None
    target: str | None
    system: bool
    started: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    message: str = ""
    after: int | None = None


class _Run:
    def __init__(self, spec: Spec, failing: frozenset[str]) -> None:
        self.spec = spec
        self.failing = failing
        self.sim = Simulation()
        self.machine: Machine | None = None
        self.inputs: deque[engine.Input] = deque()
        self.open: _Open | None = None
        self.now = SIMULATED_NOW
        # The timers the engine armed and did not disarm, by name.
        self.timers: dict[str, Timer] = {}

    # -- the service's part: write, then run the effects

    def take(self, decision: Decision) -> None:  # noqa: C901 — the service's write, effects and history in one place, as Service._apply does
        if decision.machine is not None:
            version = self.machine.version + 1 if self.machine is not None else 1
            self.machine = decision.machine.model_copy(update={"version": version})
            self.sim.epoch = self.machine.epoch  # kept when the machine is deleted
        for effect in decision.effects:
            if isinstance(effect, StartTask):
                self.started(
                    effect.invocation.task, effect.invocation.epoch, effect.invocation.attempt
                )
            elif isinstance(effect, Publish):
                self.published(effect)
            elif isinstance(effect, ArmTimer):
                self.timers[effect.timer.name] = effect.timer
            elif isinstance(effect, DisarmTimer):
                self.timers.pop(effect.name, None)
        if decision.deleted:
            self.machine = None
            self.sim.status = "deleted"
        for entry in decision.history:
            if entry.kind == "task_finished" and entry.status == "failed" and entry.task:
                record = self.machine.tasks.get(entry.task) if self.machine else None
                if record is None or record.status == "failed":
                    assert self.open is not None
                    self.open.failed.append(entry.task)
            elif entry.kind == "halted":
                self.close()
                self.sim.steps.append(
                    self.step(
                        "NEXT", entry.state, None, True, refused="halted", message=entry.error or ""
                    )
                )

    def published(self, effect: Publish) -> None:
        """What the bus hands back to the machine: NEXT, FAILED, the expire event."""
        detail = effect.event.detail
        if effect.event.detail_type != "Machine Event":
            return
        if detail.get("reason") == expiry.EXPIRY:
            self.inputs.append(ExpireEvent(detail["event"], detail["epoch"]))
        elif detail.get("event") in SYSTEM_EVENTS:
            self.inputs.append(InternalEvent(detail["event"], detail["epoch"]))

    def started(self, task: str, epoch: int, attempt: int) -> None:
        """The chosen executor: it starts at once and reports its result."""
        assert self.machine is not None and self.open is not None
        if attempt == 1:
            self.open.started.append(task)
        self.inputs.append(TasksStarted((StartReport(task, epoch, attempt, run_id="sim"),)))
        failed = task in self.failing
        self.inputs.append(
            TaskFinished(
                TaskFinishedDetail(
                    machine_id=self.machine.id,
                    epoch=epoch,
                    task=task,
                    attempt=attempt,
                    status="failed" if failed else "succeeded",
                    error="fails in this simulation (--fail)" if failed else None,
                )
            )
        )

    def drain(self) -> None:
        for _ in range(MAX_INPUTS_PER_EVENT):
            if not self.inputs or self.machine is None:
                self.close()
                return
            inp = self.inputs.popleft()
            if isinstance(inp, InternalEvent | ExpireEvent):
                decision = engine.decide(self.machine, self.spec, inp, self.now)
                if isinstance(inp, ExpireEvent) and decision.outcome is not Outcome.APPLIED:
                    continue  # an expire event overtaken by a state change
                self.close()
                source = self.machine.state
                self.open = _Open(
                    inp.event, source, self.entered(decision), system=True, after=self.after
                )
                self.take(decision)
            else:
                self.take(engine.decide(self.machine, self.spec, inp, self.now))
        raise AssertionError(f"the simulation did not settle after {MAX_INPUTS_PER_EVENT} inputs")

    @property
    def after(self) -> int | None:
        """Seconds since creation, once time has passed."""
        seconds = int((parse_time(self.now) - parse_time(SIMULATED_NOW)).total_seconds())
        return seconds or None

    @staticmethod
    def entered(decision: Decision) -> str | None:
        return next((h.to_state for h in decision.history if h.kind == "transition"), None)

    # -- steps

    def close(self) -> None:
        if self.open is None:
            return
        o, self.open = self.open, None
        self.sim.steps.append(
            self.step(
                o.event,
                o.source,
                o.target,
                o.system,
                started=tuple(o.started),
                failed=tuple(o.failed),
                message=o.message,
                after=o.after,
            )
        )

    def step(
        self, event: str, source: str | None, target: str | None, system: bool, **kw: Any
    ) -> Step:
        m = self.machine
        if m is not None:
            self.sim.state, self.sim.epoch = m.state, m.epoch
            self.sim.status = m.status
        else:
            self.sim.state = None
        waiting = tuple(n for n, r in (m.current_tasks().items() if m else ()) if r.waiting_for)
        return Step(
            event,
            source,
            target,
            self.sim.epoch,
            self.sim.state,
            self.sim.status,
            system=system,
            waiting=waiting,
            **kw,
        )

    # -- inputs

    def create(self) -> None:
        decision = engine.create(self.spec, Create("simulated"), SIMULATED_NOW)
        self.open = _Open(CREATE, None, INIT_STATE, system=False)
        self.take(decision)
        self.drain()

    def external(self, event: str) -> None:
        if self.machine is None:
            self.sim.steps.append(
                self.step(
                    event,
                    None,
                    None,
                    False,
                    refused="machine_not_found",
                    message="the machine was deleted when it completed a terminal state",
                )
            )
            return
        source = self.machine.state
        try:
            decision = engine.decide(
                self.machine, self.spec, ExternalEvent(event, source="simulate"), SIMULATED_NOW
            )
        except StatewrightError as exc:
            self.sim.steps.append(
                self.step(event, source, None, False, refused=exc.code, message=exc.message)
            )
            return
        self.open = _Open(event, source, self.entered(decision), system=False)
        self.take(decision)
        self.drain()

    # -- time

    def advance(self, seconds: int) -> None:
        """Let ``seconds`` pass: fire each armed timer due by then, in order of due time,
        at its due time (and whatever the machine does about it)."""
        end = format_time(parse_time(SIMULATED_NOW) + timedelta(seconds=seconds))
        while self.machine is not None:
            due = [t for t in self.timers.values() if parse_time(t.due) <= parse_time(end)]
            if not due:
                break
            timer = min(due, key=lambda t: (parse_time(t.due), t.name))
            del self.timers[timer.name]
            self.now = timer.due
            self.fire(timer)
        self.now = end

    def fire(self, timer: Timer) -> None:
        assert self.machine is not None
        decision = engine.decide(self.machine, self.spec, TimerFired(timer), self.now)
        if decision.outcome is not Outcome.APPLIED or decision.machine is None:
            return  # stale: the timer of an expiry moved since
        self.close()
        state, lifecycle = self.machine.state, self.spec.lifecycle
        assert lifecycle is not None  # only a lifecycle arms expiry timers
        if timer.purpose is TimerPurpose.WARNING:
            event = EXPIRING
            left = expiry.expiring_detail(decision.machine, self.now)["in_seconds"]
            message = f"Machine Expiring: expires in {format_duration(left)}"
        else:
            event = EXPIRED
            message = f"{lifecycle.expire_event} sent"
            if self.spec.handler(state, lifecycle.expire_event) is None:
                message = (
                    f"{lifecycle.expire_event} is not accepted in {state}: it is sent again "
                    "each time the machine enters a state"
                )
        self.open = _Open(event, state, None, system=False, message=message, after=self.after)
        self.take(decision)
        self.drain()


def simulate(
    spec: Spec, events: Iterable[str], failing: Iterable[str] = (), *, advance: int = 0
) -> Simulation:
    """Create a machine of ``spec`` and apply ``events`` in order. Tasks named in
    ``failing`` fail every attempt; every other task succeeds. Then let ``advance``
    seconds pass (the events all apply at the machine's creation)."""
    run = _Run(spec, frozenset(failing))
    run.create()
    for event in events:
        run.external(event)
    if advance:
        run.advance(advance)
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
        elif step.event in TIMER_STEPS:
            lines.append(f"after {format_duration(step.after or 0)}: {step.message}")
            if step.event == EXPIRING:
                continue  # a warning changes nothing about the machine
        elif step.target is None:
            lines.append(f"{indent}{step.event}: accepted in {step.source}, no state change")
        else:
            lines.append(
                f"{indent}{step.event}: {step.source} -> {step.target} (epoch {step.epoch})"
            )
        for task in step.started:
            outcome = "fails" if task in step.failed else "succeeds"
            lines.append(f"{indent}  task {task}{_after(spec, step, task)} {outcome}")
            lines.extend(f"{indent}    {line}" for line in _references(spec, task))
        for task in step.waiting:
            lines.append(f"{indent}  task {task} not started: waits for a failed need")
        following = sim.steps[index + 1] if index + 1 < len(sim.steps) else None
        if following is not None and following.system:
            continue
        lines.append(f"  {_status_line(spec, step)}")
    return lines


def _after(spec: Spec, step: Step, task: str) -> str:
    executor = spec.tasks[task].executor if task in spec.tasks else "?"
    state = step.target or step.source
    needs = spec.needs_in_state(state, task) if state in spec.states and task in spec.tasks else []
    return f" ({executor}, after {', '.join(needs)})" if needs else f" ({executor})"


def _references(spec: Spec, task: str) -> list[str]:
    """The task's references as written (a dry run resolves none)."""
    task_spec = spec.tasks.get(task)
    plugin = registry().get(task_spec.executor) if task_spec else None
    if task_spec is None or plugin is None:
        return []
    lines: list[str] = []
    for name in plugin.reference_fields:
        try:
            found = references_in(task_spec.config.get(name))
        except ReferenceSyntaxError:
            continue  # the linter refuses it; nothing to show
        for where, ref in found:
            lines.append(f"config.{_join(name, where)} takes {ref.text}")
    return lines


def _join(name: str, where: str) -> str:
    return f"{name}.{where}" if where else name


def _status_line(spec: Spec, step: Step) -> str:
    if step.status == "deleted":
        return "terminal state satisfied: the machine is deleted"
    state = step.state
    assert state is not None
    accepted = ", ".join(e for e in spec.accepted_events(state) if e not in SYSTEM_EVENTS)
    accepts = f"accepts {accepted}" if accepted else "accepts no external event"
    if step.status == "failed":
        return f"failed in {state} (POST /machines/{{id}}/retry re-runs the tasks); {accepts}"
    return f"waits in {state}; {accepts}"
