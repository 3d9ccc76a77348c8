"""Specs and a small driver for the engine tests: the driver plays the store (it keeps
the decided machine and bumps its version) and checks on every step that the engine
left its input untouched."""

from __future__ import annotations

from typing import Any

from statewright import engine
from statewright.engine import (
    ArmTimer,
    Create,
    Decision,
    ExternalEvent,
    InternalEvent,
    Publish,
    StartReport,
    StartTask,
    TaskFinished,
    TasksStarted,
    TimerFired,
)
from statewright.model import Machine, TaskFinishedDetail
from statewright.spec.models import Spec
from statewright.timers import Timer

T0 = "2026-03-01T12:00:00.000Z"


def make_spec(name: str, body: dict[str, Any]) -> Spec:
    return Spec.model_validate({"name": name, **body})


def advance(state: str) -> list[dict[str, str]]:
    return [{"action": "advance", "state": state}]


NOOP = [{"action": "no-op"}]

# The example of docs/spec.md.
PREVIEW = make_spec(
    "preview-env",
    {
        "events": ["LAUNCH", "DESTROY"],
        "states": {
            "INIT": {"on": {"LAUNCH": advance("PROVISION")}},
            "PROVISION": {"tasks": ["db-setup"], "on": {"NEXT": advance("RUN")}},
            "RUN": {"on": {"DESTROY": advance("TEARDOWN")}},
            "TEARDOWN": {"terminal": True, "tasks": ["db-teardown"]},
        },
        "tasks": {
            "db-setup": {"executor": "lambda", "config": {"name": "db-setup"}},
            "db-teardown": {
                "executor": "terraform",
                "config": {
                    "action": "destroy",
                    "source": {"type": "s3", "bucket": "b", "key": "machines.tf"},
                },
            },
        },
    },
)

# Every kind of handler: advance, no-op, empty, re-entry, FAILED, a NEXT that is a
# no-op, a state without NEXT, a terminal state without tasks.
RICH = make_spec(
    "rich",
    {
        "events": ["LAUNCH", "DESTROY", "PING", "POKE", "RESET", "ABORT", "SOAK", "PARK"],
        "states": {
            "INIT": {"on": {"LAUNCH": advance("BUILD"), "PING": NOOP, "POKE": []}},
            "BUILD": {
                "tasks": ["compile", "test"],
                "on": {
                    "NEXT": advance("RUN"),
                    "FAILED": advance("FIXING"),
                    "ABORT": advance("GONE"),
                    "RESET": advance("BUILD"),
                    "PING": NOOP,
                },
            },
            "RUN": {
                "on": {
                    "DESTROY": advance("GONE"),
                    "PING": NOOP,
                    "SOAK": advance("SOAKING"),
                    "PARK": advance("PARKED"),
                }
            },
            "FIXING": {"on": {"RESET": advance("BUILD")}},
            "SOAKING": {
                "tasks": ["soak"],
                "on": {"NEXT": NOOP, "FAILED": NOOP, "DESTROY": advance("GONE")},
            },
            "PARKED": {"tasks": ["test"], "on": {"DESTROY": advance("GONE")}},
            "GONE": {"terminal": True},
        },
        "tasks": {
            "compile": {
                "executor": "lambda",
                "config": {"name": "compile"},
                "retry": {"attempts": 3, "backoff_seconds": 10},
            },
            "test": {"executor": "lambda", "config": {"name": "test", "args": {"k": 1}}},
            "soak": {
                "executor": "terraform",
                "config": {"action": "apply", "source": {"type": "local", "location": "m"}},
                "timeout_seconds": 60,
            },
        },
        "base_dir": "/specs",
    },
)


class Run:
    """One machine driven through the engine, as the service would."""

    def __init__(
        self, spec: Spec, machine_id: str = "m-1", metadata: dict[str, Any] | None = None
    ) -> None:
        self.spec = spec
        self.now = T0
        self.clock = 0.0
        decision = engine.create(spec, Create(machine_id, metadata), self.now)
        assert decision.machine is not None
        self.machine: Machine = decision.machine
        self.last = decision
        self.gone = decision.deleted
        self.timers: list[Timer] = []  # timers armed so far, for tests that keep them

    def tick(self, seconds: float) -> None:
        self.clock += seconds
        self.now = engine.add_seconds(T0, self.clock)

    def apply(self, inp: engine.Input) -> Decision:
        before = self.machine.model_copy(deep=True)
        decision = engine.decide(self.machine, self.spec, inp, self.now)
        assert self.machine == before, "the engine modified its input"
        assert decision == engine.decide(self.machine, self.spec, inp, self.now), (
            "not deterministic"
        )
        if decision.machine is not None:
            self.machine = decision.machine.model_copy(update={"version": self.machine.version + 1})
        self.gone = self.gone or decision.deleted
        self.last = decision
        return decision

    def event(self, name: str, metadata: dict[str, Any] | None = None) -> Decision:
        return self.apply(ExternalEvent(name, metadata, source="api"))

    def system(self, name: str, epoch: int | None = None) -> Decision:
        return self.apply(InternalEvent(name, self.machine.epoch if epoch is None else epoch))

    def start(self, *tasks: str) -> Decision:
        current = self.machine.current_tasks()
        names = tasks or tuple(
            n for n, r in current.items() if r.status == "pending" and not r.waiting_for
        )
        reports = tuple(
            StartReport(
                n,
                current[n].epoch,
                current[n].attempt,
                run_id=f"run-{n}-{current[n].epoch}-{current[n].attempt}",
            )
            for n in names
        )
        return self.apply(TasksStarted(reports))

    def finish(
        self,
        task: str,
        status: str = "succeeded",
        *,
        output: Any = None,
        error: str | None = None,
        attempt: int | None = None,
        epoch: int | None = None,
    ) -> Decision:
        record = self.machine.tasks[task]
        detail = TaskFinishedDetail(
            machine_id=self.machine.id,
            epoch=self.machine.epoch if epoch is None else epoch,
            task=task,
            attempt=record.attempt if attempt is None else attempt,
            status=status,  # type: ignore[arg-type]
            output=output,
            error=error,
        )
        return self.apply(TaskFinished(detail))

    def fire(self, timer: Timer) -> Decision:
        """The timer comes due: the clock moves to its due time (if it is later) and
        the timer fires."""
        if timer.due > self.now:
            self.now = timer.due
        return self.apply(TimerFired(timer))

    def complete(self, *tasks: str) -> Decision:
        self.start()
        decision = self.last
        for task in tasks:
            decision = self.finish(task)
        return decision


def starts(decision: Decision) -> list[StartTask]:
    return [e for e in decision.effects if isinstance(e, StartTask)]


def armed(decision: Decision) -> list[Timer]:
    return [e.timer for e in decision.effects if isinstance(e, ArmTimer)]


def published(decision: Decision) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.event.detail_type, e.event.detail) for e in decision.effects if isinstance(e, Publish)
    ]


def system_events(decision: Decision) -> list[tuple[str, int]]:
    return [(d["event"], d["epoch"]) for t, d in published(decision) if t == "Machine Event"]


def kinds(decision: Decision) -> list[str]:
    return [h.kind for h in decision.history]
