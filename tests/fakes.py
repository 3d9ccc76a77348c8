"""The fakes tests share, each implementing its port's protocol (tests.integration.service
.harness checks them against the protocols with annotated assignments): a recording bus,
a recording executor, timers fired at an injected time, and task invocations with
defaults for every field."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from statewright.model import BusEvent, TaskInvocation
from statewright.timers import Timer

if TYPE_CHECKING:
    from statewright.service import Outcome, Service


class RecordingBus:
    """A Bus that keeps what is published. Threaded tests wait for events with
    ``wait_for``; service tests hand internal Machine Events back with ``deliver``, the
    way the bus would (each once, or ``times`` times)."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []
        self.delivered = 0
        self._cond = threading.Condition()

    def publish(self, events: Sequence[BusEvent]) -> None:
        with self._cond:
            self.events.extend(events)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[BusEvent]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.events) >= count, timeout):
                raise AssertionError(f"expected {count} events, got {self.events}")
            return list(self.events)

    def finished(self, timeout: float = 30.0) -> dict[str, Any]:
        """The detail of the only Task Finished event."""
        events = self.wait_for(1, timeout)
        assert len(events) == 1, events
        assert events[0].detail_type == "Task Finished"
        assert events[0].source == "statewright"
        return events[0].detail

    def system_events(self) -> list[tuple[str, str, int]]:
        return [
            (e.detail["machine_id"], e.detail["event"], e.detail["epoch"])
            for e in self.events
            if e.detail_type == "Machine Event"
        ]

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [e.detail for e in self.events if e.detail_type == detail_type]

    def deliver(self, service: Service, times: int = 1) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while self.delivered < len(self.events):
            event = self.events[self.delivered]
            self.delivered += 1
            if event.detail_type == "Machine Event":
                for _ in range(times):
                    outcomes.append(
                        service.handle_bus_event(event.source, event.detail_type, event.detail)
                    )
        return outcomes


class FakeExecutor:
    """Records starts and cancels; ``on_start`` can report a result synchronously (a
    very fast task) and ``refuse`` makes start raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started: list[TaskInvocation] = []
        self.cancelled: list[str] = []
        self.refuse: Exception | None = None
        self.on_start: Callable[[TaskInvocation], None] | None = None

    def start(self, invocation: TaskInvocation) -> str:
        self.started.append(invocation)
        if self.refuse is not None:
            raise self.refuse
        if self.on_start is not None:
            self.on_start(invocation)
        return f"{self.name}:{invocation.run_key}"

    def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)


class FakeTimers:
    """Keeps armed timers by name (arming one again keeps the first, as every adapter
    does); ``fire_due`` fires, earliest first, what is due at a time the test chooses."""

    def __init__(self) -> None:
        self.armed: dict[str, Timer] = {}
        self.disarmed: list[str] = []
        self.fired: list[Timer] = []

    def arm(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            self.armed.setdefault(timer.name, timer)

    def disarm(self, names: Sequence[str]) -> None:
        for name in names:
            self.disarmed.append(name)
            self.armed.pop(name, None)

    def due(self, at: str) -> list[Timer]:
        return sorted((t for t in self.armed.values() if t.due <= at), key=lambda t: t.due)

    def fire_due(self, service: Service, at: str) -> list[Outcome]:
        """Fire (through ``service.fire_timer``) and forget every timer due at ``at``,
        including those the fires arm that are due by then. The service's clock should
        say ``at`` too."""
        outcomes: list[Outcome] = []
        while due := self.due(at):
            timer = due[0]
            del self.armed[timer.name]
            self.fired.append(timer)
            outcomes.append(service.fire_timer(timer))
        return outcomes


def invocation(
    executor: str = "lambda",
    config: dict[str, Any] | None = None,
    *,
    task_spec: dict[str, Any] | None = None,
    **fields: Any,
) -> TaskInvocation:
    """One attempt of one task: the task is ``task_spec`` (else ``executor`` with
    ``config``); ``fields`` override the invocation's defaults."""
    data: dict[str, Any] = {
        "machine_id": "m1",
        "spec": "jobs",
        "spec_digest": "sha256:test",
        "state": "PROVISION",
        "task": "t",
        "epoch": 1,
        "attempt": 1,
        "timeout_seconds": 30,
        **fields,
        "task_spec": task_spec or {"executor": executor, "config": config or {}},
    }
    return TaskInvocation.model_validate(data)
