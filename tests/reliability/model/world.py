"""The world around a real Service in the model-based tests: a bus that is a network
(published events wait in a pool until the test delivers, repeats, reorders or drops
them), executors whose runs finish when the test says so, and fault injection on every
port the service calls — a crash at any point between the conditional write and the
last of its effects, or a concurrent write inside the window between a decision and its
conditional write.

Executors keep the port's promise (ports.Executor): a start for a start key (the run
key of one incarnation of the machine) already started starts nothing new. They count
such repeats, and every first start, so a test can tell a task run twice from a start
asked for twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from statewright.model import EVENT_SOURCE, BusEvent, Machine, TaskInvocation
from statewright.ports import Store


class SimulatedCrash(BaseException):
    """The process died here. A BaseException, like SystemExit: nothing in the product
    may catch it, as nothing can catch a SIGKILL."""


@dataclass
class Faults:
    """Fault plan of one step: crash at the ``crash_at``-th port call boundary, or run
    ``interloper`` (another request) inside the next conditional write's window."""

    crash_at: int | None = None
    interloper: Callable[[], None] | None = None
    points: int = 0
    crashed_at: str | None = None
    commits: list[str] = field(default_factory=list)
    crashes: int = 0
    interlopers_run: int = 0

    def begin(self, crash_at: int | None = None) -> None:
        self.crash_at, self.points, self.crashed_at, self.commits = crash_at, 0, None, []

    def end(self) -> None:
        self.crash_at = None

    def point(self, where: str) -> None:
        if self.crash_at is not None and self.points == self.crash_at:
            self.crash_at = None
            self.crashed_at = where
            self.crashes += 1
            raise SimulatedCrash(where)
        self.points += 1

    def before_write(self) -> None:
        interloper, self.interloper = self.interloper, None
        if interloper is not None:
            self.interlopers_run += 1
            interloper()


def instrument(store: Store, faults: Faults) -> Store:
    """Put crash points around the store's writes and the interloper before them (on
    the instance, so Store.mutate's own calls go through them too)."""
    for name in ("create", "update", "delete"):
        original = getattr(store, name)

        def write(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> None:
            if _name != "create":
                faults.before_write()
            faults.point(f"{_name}:before")
            _original(*args, **kwargs)
            faults.commits.append(_name)
            faults.point(f"{_name}:after")

        setattr(store, name, write)
    return store


Delivery = tuple[str, str, dict[str, Any]]  # source, detail-type, detail


class NetworkBus:
    """The bus: NEXT/FAILED wait in ``pool`` until the test delivers them."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.pool: list[Delivery] = []
        self.step_system: list[tuple[str, str, int]] = []
        self.published = 0

    def publish(self, events: Sequence[BusEvent]) -> None:
        self.faults.point("publish:before")
        for event in events:
            self.published += 1
            if event.detail_type == "Machine Event":
                d = event.detail
                self.step_system.append((d["machine_id"], d["event"], d["epoch"]))
                self.pool.append((event.source, event.detail_type, dict(d)))
        self.faults.point("publish:after")


@dataclass
class Run:
    machine_id: str
    task: str
    epoch: int
    attempt: int
    reports: int = 0
    cancelled: bool = False


class Runs:
    """Every run the executors started, by start key."""

    def __init__(self) -> None:
        self.by_key: dict[str, Run] = {}
        self.order: list[str] = []
        self.step_new: list[tuple[str, str, int, int]] = []
        self.repeats = 0

    def started(self, key: str) -> bool:
        return key in self.by_key

    def report(self, key: str, status: str, output: Any) -> Delivery:
        """The run's Task Finished, as the executor would put it on the bus."""
        run = self.by_key[key]
        run.reports += 1
        detail: dict[str, Any] = {
            "machine_id": run.machine_id,
            "epoch": run.epoch,
            "task": run.task,
            "attempt": run.attempt,
            "status": status,
        }
        if status == "succeeded":
            detail["output"] = output
        else:
            detail["error"] = f"{run.task} failed"
        return (EVENT_SOURCE, "Task Finished", detail)


class FakeExecutor:
    def __init__(self, name: str, runs: Runs, faults: Faults) -> None:
        self.name = name
        self.runs = runs
        self.faults = faults

    def start(self, invocation: TaskInvocation) -> str:
        self.faults.point(f"start:{self.name}:before")
        key = invocation.start_key
        if key in self.runs.by_key:
            self.runs.repeats += 1
        else:
            inv = invocation
            self.runs.by_key[key] = Run(inv.machine_id, inv.task, inv.epoch, inv.attempt)
            self.runs.order.append(key)
            self.runs.step_new.append((inv.machine_id, inv.task, inv.epoch, inv.attempt))
        self.faults.point(f"start:{self.name}:after")
        return f"{self.name}:{key}"

    def cancel(self, run_id: str) -> None:
        self.faults.point(f"cancel:{self.name}:before")
        run = self.runs.by_key.get(run_id.split(":", 1)[1])
        if run is not None:
            run.cancelled = True


def start_key(machine: Machine, task: str, epoch: int, attempt: int) -> str:
    """TaskInvocation.start_key's documented shape (docs/runtime.md, The loop)."""
    return f"{machine.id}:{epoch}:{task}:{attempt}@{machine.created_at}"


def project(machine: Machine) -> dict[str, Any]:
    """The stored machine as the reference model sees it (pending and running are one)."""
    return {
        "state": machine.state,
        "previous_state": machine.previous_state,
        "epoch": machine.epoch,
        "status": machine.status,
        "metadata": dict(machine.metadata),
        "tasks": {
            name: (
                "active" if r.status in ("pending", "running") else r.status,
                r.attempt,
                r.epoch,
                r.state,
                r.output,
                r.error,
            )
            for name, r in machine.tasks.items()
        },
    }


def stored_history(store: Store, machine_id: str) -> list[tuple[Any, ...]]:
    """The machine's history as the model keeps it (without ``task_started``)."""
    entries = []
    token: str | None = None
    while True:
        page, token = store.history(machine_id, limit=1000, next_token=token)
        entries.extend(page)
        if token is None:
            break
    seqs = [e.seq for e in entries]
    assert seqs == list(range(1, len(seqs) + 1)), f"history sequence has gaps/repeats: {seqs}"
    out: list[tuple[Any, ...]] = []
    for e in entries:
        if e.kind == "created":
            out.append(("created", e.epoch, e.state))
        elif e.kind == "event":
            out.append(("event", e.epoch, e.state, e.event))
        elif e.kind == "transition":
            out.append(("transition", e.epoch, e.state, e.event, e.from_state))
        elif e.kind == "task_cancelled":
            out.append(("task_cancelled", e.epoch, e.state, e.task, e.attempt))
        elif e.kind == "task_finished":
            out.append(("task_finished", e.epoch, e.state, e.task, e.attempt, e.status))
        elif e.kind == "retry":
            out.append(("retry", e.epoch, e.state))
    return out
