"""A concurrent world for the storms: executors and a bus that hand their follow-ups
(task results, NEXT deliveries, the DESTROY a user sends once the machine runs) to a
job queue that many threads drain at once, each follow-up delivered more than once."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from statewright.model import EVENT_SOURCE, BusEvent, TaskInvocation
from statewright.spec.models import Spec

SPEC = Spec.model_validate(
    {
        "name": "storm",
        "events": ["LAUNCH", "PING", "DESTROY"],
        "states": {
            "INIT": {"on": {"LAUNCH": [{"action": "advance", "state": "BUILD"}], "PING": []}},
            "BUILD": {
                "tasks": ["compile", "test"],
                "on": {"NEXT": [{"action": "advance", "state": "RUN"}], "PING": []},
            },
            "RUN": {"on": {"DESTROY": [{"action": "advance", "state": "TEARDOWN"}], "PING": []}},
            "TEARDOWN": {"terminal": True, "tasks": ["teardown"]},
        },
        "tasks": {
            name: {"executor": "lambda", "config": {"name": name}}
            for name in ("compile", "test", "teardown")
        },
    }
)
LIFECYCLE = ["INIT", "BUILD", "RUN", "TEARDOWN"]

Job = Callable[[], None]


class Jobs:
    """Work for the storm's threads; ``join`` returns once every job (and every job a
    job added) is done."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue()

    def add(self, job: Job, times: int = 1) -> None:
        for _ in range(times):
            self._queue.put(job)

    def work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
            finally:
                self._queue.task_done()

    def run(self, threads: int) -> list[BaseException]:
        """Drain the queue with ``threads`` workers; the errors jobs raised."""
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                self.work()
            except BaseException as exc:  # a failed job must not hang the storm
                errors.append(exc)
                self.work()

        pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for thread in pool:
            thread.start()
        self._queue.join()
        for _ in pool:
            self._queue.put(None)
        for thread in pool:
            thread.join(timeout=30)
        return errors


@dataclass
class Tally:
    """Thread-safe counters and logs of what the storm saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    started: Counter[str] = field(default_factory=Counter)  # run key -> starts
    published: list[BusEvent] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)  # conflict retries per request

    def add(self, name: str, value: int = 1) -> None:
        with self.lock:
            self.counts[name] += value

    def count(self, name: str, value: int = 1) -> None:
        """The service's MetricsSink: its ``conflicts`` are one request's retries."""
        with self.lock:
            self.counts[f"metric:{name}"] += value
            if name == "conflicts":
                self.retries.append(value)


class StormExecutor:
    """Starts a run once per run key; its result is delivered twice (a task's two
    completion signals, as CodeBuild's event and the buildspec's report)."""

    name = "lambda"

    def __init__(self, tally: Tally, jobs: Jobs, deliver: Callable[[str, str, Any], None]) -> None:
        self.tally = tally
        self.jobs = jobs
        self.deliver = deliver

    def start(self, invocation: TaskInvocation) -> str:
        with self.tally.lock:
            self.tally.started[invocation.run_key] += 1
            first = self.tally.started[invocation.run_key] == 1
        if first:
            detail = {
                "machine_id": invocation.machine_id,
                "epoch": invocation.epoch,
                "task": invocation.task,
                "attempt": invocation.attempt,
                "status": "succeeded",
                "output": {"by": invocation.run_key},
            }
            self.jobs.add(lambda: self.deliver(EVENT_SOURCE, "Task Finished", detail), times=2)
        return f"run:{invocation.run_key}"

    def cancel(self, run_id: str) -> None:
        self.tally.add("cancelled")


class StormBus:
    """Every NEXT is delivered three times; a machine that reaches RUN is sent DESTROY
    by three senders at once."""

    def __init__(
        self,
        tally: Tally,
        jobs: Jobs,
        deliver: Callable[[str, str, Any], None],
        destroy: Callable[[str], None],
    ) -> None:
        self.tally = tally
        self.jobs = jobs
        self.deliver = deliver
        self.destroy = destroy

    def publish(self, events: Sequence[BusEvent]) -> None:
        with self.tally.lock:
            self.tally.published.extend(events)
        for event in events:
            detail = dict(event.detail)
            if event.detail_type == "Machine Event":
                self.jobs.add(
                    lambda d=detail: self.deliver(EVENT_SOURCE, "Machine Event", d), times=3
                )
            elif event.detail_type == "Machine State Changed" and detail["to"] == "RUN":
                self.jobs.add(lambda m=detail["machine_id"]: self.destroy(m), times=3)
