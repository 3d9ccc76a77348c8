"""Crash recovery in AWS terms, under moto: the dispatcher loses task starts and NEXT
publishes — a transient executor error, a crash right after the start, a crash while
publishing, a build whose events never come — and the reconciler
(functions/reconciler/handler.py) brings every machine through its whole lifecycle.

Machines of specs/preview-env.yml (PROVISION runs a Lambda task, TEARDOWN a Terraform
build) are launched and destroyed by a user's bus rule. Each machine gets one fault on
the way up and one on the way down, by its number:

| n % 4 | launch (Lambda task)                   | destroy (CodeBuild task)              |
|-------|----------------------------------------|---------------------------------------|
| 0     | none                                   | none                                  |
| 1     | Invoke throttled: the start is deferred | StartBuild throttled: deferred        |
| 2     | the dispatcher dies after Invoke       | the dispatcher dies after StartBuild  |
| 3     | the dispatcher dies publishing NEXT    | the build's events are late (below)   |

A dispatcher that dies fails its invocation, so EventBridge delivers the event again
(here: at once); that redelivery is a duplicate and publishes nothing, which is why the
lost start or NEXT is the reconciler's to repair. A build's report and its SUCCEEDED
state change come in either order; for a late build (3) neither has come when the
reconciler runs: it finds the build SUCCEEDED and leaves it to its report (which its
build made sure EventBridge accepted), and the report, redelivered, completes it. The
reconciler runs as it would after its schedule, past the grace it leaves a start in
flight (the service's clock is moved on). Every machine must end deleted, each passing
RUN once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from statewright.aws import wiring
from statewright.aws.codebuild_executor import CodeBuildExecutor
from statewright.aws.eventbridge_bus import EventBridgeBus
from statewright.aws.lambda_executor import LambdaExecutor
from statewright.aws.observability import METRICS
from statewright.aws.reconciler import PENDING_GRACE_SECONDS
from statewright.engine import add_seconds
from statewright.errors import StartDeferred
from statewright.model import BusEvent, TaskInvocation, now_iso

from tests.integration.aws.deployment import Deployment, eventbridge, lambda_context
from tests.reliability.figures import record, scaled
from tests.reliability.model.world import SimulatedCrash

USER_SOURCE = "my.scheduler"
LIFECYCLE = ["INIT", "PROVISION", "RUN", "TEARDOWN"]


def number(machine_id: str) -> int:
    return int(machine_id.rsplit("-", 1)[1])


class Lossy:
    """The faults, by machine number; ``armed`` turns them on for the first try only."""

    def __init__(self) -> None:
        self.armed = False
        self.done: set[tuple[str, str]] = set()
        self.injected: Counter[str] = Counter()

    def once(self, machine_id: str, fault: str) -> bool:
        if not self.armed or (machine_id, fault) in self.done:
            return False
        self.done.add((machine_id, fault))
        self.injected[fault] += 1
        return True


def throttled(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation
    )


@pytest.fixture
def lossy(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lossy]:
    faults = Lossy()
    lambda_start = LambdaExecutor.start  # the deployment's recording start
    build_start = CodeBuildExecutor.start
    publish = EventBridgeBus.publish

    def start_lambda(self: LambdaExecutor, inv: TaskInvocation) -> str:
        kind = number(inv.machine_id) % 4
        if kind == 1 and faults.once(inv.machine_id, "lambda start throttled"):
            # What boto3 raises once its own retries are spent; the executor defers.
            self._client = _Throttled(self._client, "invoke")  # type: ignore[assignment]
            try:
                return lambda_start(self, inv)
            except StartDeferred:
                deployment.lambda_starts.remove(inv)  # recorded, but Invoke never happened
                raise
            finally:
                self._client = self._client.inner  # type: ignore[attr-defined]
        run_id = lambda_start(self, inv)
        if kind == 2 and faults.once(inv.machine_id, "dispatcher died after Invoke"):
            raise SimulatedCrash("after Invoke")
        return run_id

    def start_build(self: CodeBuildExecutor, inv: TaskInvocation) -> str:
        kind = number(inv.machine_id) % 4
        if kind == 1 and faults.once(inv.machine_id, "StartBuild throttled"):
            self._client = _Throttled(self._client, "start_build")  # type: ignore[assignment]
            try:
                return build_start(self, inv)
            finally:
                self._client = self._client.inner  # type: ignore[attr-defined]
        run_id = build_start(self, inv)
        if kind == 2 and faults.once(inv.machine_id, "dispatcher died after StartBuild"):
            raise SimulatedCrash("after StartBuild")
        return run_id

    def lossy_publish(self: EventBridgeBus, events: list[BusEvent]) -> None:
        for event in events:
            d = event.detail
            if (
                d.get("event") == "NEXT"
                and number(d["machine_id"]) % 4 == 3
                and faults.once(d["machine_id"], "dispatcher died publishing NEXT")
            ):
                raise SimulatedCrash("publishing NEXT")
        publish(self, events)

    monkeypatch.setattr(LambdaExecutor, "start", start_lambda)
    monkeypatch.setattr(CodeBuildExecutor, "start", start_build)
    monkeypatch.setattr(EventBridgeBus, "publish", lossy_publish)
    yield faults


class _Throttled:
    """A client whose ``operation`` raises throttling, as after boto3's own retries."""

    def __init__(self, inner: Any, operation: str) -> None:
        self.inner = inner
        self.exceptions = inner.exceptions
        self._operation = operation

    def __getattr__(self, name: str) -> Any:
        if name == self._operation:

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise throttled(name)

            return fail
        return getattr(self.inner, name)


class World:
    """EventBridge, Lambda and CodeBuild around the deployment: deliveries (again after
    a crash), task runner runs, build completions."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.outcomes: Counter[str] = Counter()
        self.redelivered = 0
        self.lambdas_run = 0
        self.builds_done = 0
        self.silent_builds: set[str] = set()
        self.late: list[dict[str, Any]] = []
        self.changes: dict[str, list[str]] = {}
        self.deleted: Counter[str] = Counter()

    def deliver(self, event: dict[str, Any]) -> None:
        while True:
            try:
                self.outcomes[self.dep.deliver(event)] += 1
                return
            except SimulatedCrash:
                self.redelivered += 1  # the invocation failed: EventBridge retries it

    def settle(self) -> None:
        """Deliver, run and complete everything until nothing moves."""
        for _ in range(50):
            moved = False
            published = self.dep.published()
            for event in published:
                detail = event["detail"]
                if event["detail-type"] == "Machine State Changed":
                    self.changes.setdefault(detail["machine_id"], []).append(detail["to"])
                elif event["detail-type"] == "Machine Deleted":
                    self.deleted[detail["machine_id"]] += 1
            for event in self.dep.dispatched(published):
                self.deliver(event)
                moved = True
            while self.lambdas_run < len(self.dep.lambda_starts):
                self.dep.run_task_runner(self.dep.lambda_starts[self.lambdas_run])
                self.lambdas_run += 1
                moved = True
            while self.builds_done < len(self.dep.builds):
                build = self.dep.builds[self.builds_done]
                self.builds_done += 1
                machine_id = build.variables["STATEWRIGHT_MACHINE_ID"]
                # Its report (as the buildspec sends it) and CodeBuild's SUCCEEDED, in
                # either order: the report completes the task whichever comes first.
                ended = [build.report("succeeded", {}), build.state_change("SUCCEEDED")]
                if number(machine_id) % 2:
                    ended.reverse()
                if number(machine_id) % 4 == 3 and machine_id not in self.silent_builds:
                    self.silent_builds.add(machine_id)  # its events come late
                    self.late += ended
                    continue
                for event in ended:
                    self.deliver(event)
                moved = True
            if not moved:
                return
        raise AssertionError("the deployment never settled")


def reconcile_later(dep: Deployment, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One scheduled run of the reconciler, later than the grace it leaves a start."""
    later = add_seconds(now_iso(), PENDING_GRACE_SECONDS + 60)
    rt = wiring.runtime(handler_dir=Path(dep.reconciler.__file__).resolve().parent, metrics=METRICS)
    monkeypatch.setattr(rt.service, "clock", lambda: later)
    report: dict[str, Any] = dep.reconciler.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context("reconciler")
    )
    return report


def states(dep: Deployment, ids: list[str]) -> dict[str, str]:
    found = {}
    for machine_id in ids:
        status, body = dep.get(machine_id)
        found[machine_id] = body["state"] if status == 200 else "deleted"
    return found


def test_the_reconciler_recovers_every_lost_start_and_next(
    deployment: Deployment, lossy: Lossy, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment
    world = World(dep)
    ids = [f"pr-{n}" for n in range(scaled(8, 48))]

    def send(event: str) -> None:
        for machine_id in ids:
            detail = {"machine_id": machine_id, "event": event, "spec": "preview-env"}
            world.deliver(eventbridge(USER_SOURCE, "Machine Event", detail))

    kinds = Counter(number(m) % 4 for m in ids)
    lossy.armed = True
    send("LAUNCH")
    world.settle()
    # A start deferred (1) or a NEXT lost (3) leaves the machine in PROVISION; after a
    # crash right after Invoke (2) the task ran anyway, and its result counts.
    stuck = states(dep, ids)
    assert Counter(stuck.values())["PROVISION"] == kinds[1] + kinds[3], stuck
    up = reconcile_later(dep, monkeypatch)
    world.settle()
    assert states(dep, ids) == dict.fromkeys(ids, "RUN")

    send("DESTROY")
    world.settle()
    stuck = states(dep, ids)
    assert Counter(stuck.values())["TEARDOWN"] == kinds[1] + kinds[3], stuck
    down = reconcile_later(dep, monkeypatch)
    world.settle()
    for event in world.late:  # EventBridge's retries deliver the late builds' events
        world.deliver(event)
    world.settle()
    assert states(dep, ids) == dict.fromkeys(ids, "deleted")

    # Nothing doubled: each machine entered each state at most once (in order) and was
    # deleted once. A dispatcher that died before publishing loses that transition's
    # Machine State Changed notice (recovery repairs the machine, not notices).
    lost_notices = 0
    for machine_id in ids:
        seen = world.changes.get(machine_id, [])
        assert seen == [s for s in LIFECYCLE if s in seen], (machine_id, seen)
        if number(machine_id) % 4 != 2:
            assert seen == LIFECYCLE, (machine_id, seen)
        lost_notices += len(LIFECYCLE) - len(seen)
        assert world.deleted[machine_id] == 1, machine_id
    quiet = reconcile_later(dep, monkeypatch)
    assert quiet["recovery"]["machines_scanned"] == 0
    repaired = up["recovery"]["machines_repaired"] + down["recovery"]["machines_repaired"]
    assert up["recovery"]["machines_repaired"] == kinds[1] + kinds[3]
    assert down["recovery"]["machines_repaired"] == kinds[1]
    # Builds whose events had not come (3), and the builds it started itself for
    # deferred starts (1), which moto finishes at once: the reconciler asks CodeBuild
    # about both, finds them SUCCEEDED and leaves them to their reports.
    assert down["builds_completed"] == 0
    assert down["outcomes"] == {"awaiting_report": kinds[1] + kinds[3]}
    # Lambda runs a task at least once: never more than once per attempt here.
    assert len(dep.lambda_starts) == len(ids)
    record(
        "recovery-aws",
        machines=len(ids),
        faults_injected=sum(lossy.injected.values()),
        crashes=lossy.injected["dispatcher died after Invoke"]
        + lossy.injected["dispatcher died after StartBuild"]
        + lossy.injected["dispatcher died publishing NEXT"],
        events_redelivered=world.redelivered,
        machines_recovered=repaired,
        builds_completed_by_reconciler=down["builds_completed"],
        state_change_notices_lost=lost_notices,
        events=sum(world.outcomes.values()),
    )
