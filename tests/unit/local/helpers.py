"""Helpers for the local adapters' tests: a recording bus and task invocations."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from statewright.model import BusEvent, TaskInvocation
from statewright.spec.models import TaskSpec

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "integration" / "local" / "fixtures"
EXAMPLES = REPO / "examples"


class RecordingBus:
    """A Bus that keeps what is published and lets a test wait for it."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []
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


def invocation(
    executor: str,
    config: dict[str, Any],
    *,
    machine_id: str = "m1",
    task: str = "t",
    epoch: int = 1,
    attempt: int = 1,
    timeout: int = 30,
    metadata: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    delay: float = 0.0,
) -> TaskInvocation:
    return TaskInvocation(
        machine_id=machine_id,
        spec="jobs",
        spec_digest="sha256:test",
        state="PROVISION",
        task=task,
        task_spec=TaskSpec(executor=executor, config=config),
        epoch=epoch,
        attempt=attempt,
        metadata=metadata or {},
        outputs=outputs or {},
        base_dir=str(base_dir) if base_dir is not None else None,
        timeout_seconds=timeout,
        delay_seconds=delay,
    )


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False
