"""A Service over a real SqliteStore, with a recording bus and fake executors that
implement the port protocols (the annotated assignments below are checked by mypy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statewright.catalog import SpecCatalog
from statewright.engine import add_seconds
from statewright.local.sqlite_store import SqliteStore
from statewright.model import Machine
from statewright.ports import Bus, Executor, Timers
from statewright.service import Outcome, Service
from statewright.spec.models import Spec

from tests.fakes import FakeExecutor, FakeTimers, RecordingBus

T0 = "2026-05-01T08:00:00.000Z"


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def count(self, name: str, value: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


@dataclass
class Clock:
    seconds: float = 0.0

    def __call__(self) -> str:
        return add_seconds(T0, self.seconds)


@dataclass
class Harness:
    service: Service
    store: SqliteStore
    bus: RecordingBus
    executors: dict[str, FakeExecutor]
    metrics: Counter
    clock: Clock = field(default_factory=Clock)
    timers: FakeTimers = field(default_factory=FakeTimers)

    def fire_timers(self, after_seconds: float) -> list[Outcome]:
        """Move the clock on by ``after_seconds`` and fire the timers due by then."""
        self.clock.seconds += after_seconds
        return self.timers.fire_due(self.service, self.clock())

    def finish(
        self,
        machine_id: str,
        task: str,
        status: str = "succeeded",
        *,
        output: Any = None,
        error: str | None = None,
        source: str = "statewright",
    ) -> Outcome:
        machine = self.service.get_machine(machine_id)
        record = machine.tasks[task]
        detail = {
            "machine_id": machine_id,
            "epoch": record.epoch,
            "task": task,
            "attempt": record.attempt,
            "status": status,
            "output": output,
            "error": error,
        }
        return self.service.handle_bus_event(source, "Task Finished", detail)

    def machine(self, machine_id: str) -> Machine | None:
        return self.store.get(machine_id)


def make_harness(tmp_path: Path, specs: Sequence[Spec]) -> Harness:
    store = SqliteStore(tmp_path / "data" / "statewright.sqlite3")
    bus = RecordingBus()
    executors = {"lambda": FakeExecutor("lambda"), "terraform": FakeExecutor("terraform")}
    metrics = Counter()
    clock = Clock()
    timers = FakeTimers()
    # The fakes are checked against the ports by mypy through these annotations.
    ports_bus: Bus = bus
    ports_executors: dict[str, Executor] = dict(executors)
    ports_timers: Timers = timers
    service = Service(
        store=store,
        bus=ports_bus,
        executors=ports_executors,
        catalog=SpecCatalog(specs),
        clock=clock,
        metrics=metrics,
        timers=ports_timers,
    )
    return Harness(service, store, bus, executors, metrics, clock, timers)
