"""Safe Terraform on AWS, through the dispatcher under moto: plan, approval and the
apply of exactly that plan; a drift check; one run per state file, the waiting run
started by the earlier build's own end (its report, or CodeBuild's Build State Change
for a stopped or failed build); a forced stop whose lock the next run releases, and a
lock held by someone else that stays."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from statewright.aws import wiring
from statewright.aws.codebuild_executor import CodeBuildExecutor
from statewright.aws.terraform_locks import lock_key
from statewright.errors import ConfigurationError
from statewright.model import SucceededRun
from statewright.service import Service

from tests import fakes
from tests.integration.aws.deployment import (
    REGION,
    STATE_BUCKET,
    Build,
    Deployment,
    deploy_specs,
    lambda_context,
)

SPEC = """\
version: 1.0
events: [LAUNCH, APPROVE, REJECT, CHECK, DESTROY]
states:
  INIT: {on: {LAUNCH: [{action: advance, state: PLANNING}]}}
  PLANNING:
    tasks: [plan]
    on:
      NEXT: [{action: advance, state: AWAIT_APPROVAL}]
      DESTROY: [{action: advance, state: TEARDOWN}]
  AWAIT_APPROVAL:
    on:
      APPROVE: [{action: advance, state: APPLYING}]
      REJECT: [{action: advance, state: PLANNING}]
  APPLYING:
    tasks: [apply]
    on:
      NEXT: [{action: advance, state: RUN}]
      DESTROY: [{action: advance, state: TEARDOWN}]
  RUN:
    on:
      CHECK: [{action: advance, state: CHECKING}]
      DESTROY: [{action: advance, state: TEARDOWN}]
  CHECKING:
    tasks: [drift]
    on:
      NEXT: [{action: advance, state: RUN}]
      FAILED: [{action: advance, state: DRIFTED}]
  DRIFTED: {on: {DESTROY: [{action: advance, state: TEARDOWN}]}}
  TEARDOWN: {terminal: true, tasks: [down]}
tasks:
  plan:
    executor: terraform
    config:
      action: plan
      source: {type: local, location: modules/env}
      variables: {size: 2}
  apply:
    executor: terraform
    cancel: force
    timeout_seconds: 600
    retry: {attempts: 2}
    config: {action: apply, plan: plan, source: {type: local, location: modules/env}}
  drift:
    executor: terraform
    config:
      action: plan
      fail_on_changes: true
      source: {type: local, location: modules/env}
  down:
    executor: terraform
    config: {action: destroy, source: {type: local, location: modules/env}}
"""
SUMMARY = {"changes": True, "add": 1, "change": 0, "destroy": 0, "resources": []}
BUILD_HOST = "root@ip-10-0-3-9"


@pytest.fixture
def dep(deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    module = 'output "size" { value = 1 }\n'
    files = {"modules/env/main.tf": module, "guarded.yml": SPEC}
    deploy_specs(tmp_path / "specs", monkeypatch, files)
    return deployment


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def store(key: str, document: dict[str, Any]) -> None:
    s3().put_object(Bucket=STATE_BUCKET, Key=key, Body=json.dumps(document).encode())


def send(dep: Deployment, machine_id: str, event: str) -> dict[str, Any]:
    status, machine = dep.api("POST", f"/machines/{machine_id}/events", {"event": event})
    assert status == 202, machine
    return dict(machine)


def settle(dep: Deployment) -> None:
    """EventBridge delivering what the control plane published (NEXT, FAILED)."""
    for event in dep.dispatched(dep.published()):
        dep.deliver(event)


def task(dep: Deployment, machine_id: str, name: str) -> dict[str, Any]:
    record: dict[str, Any] = dep.get(machine_id)[1]["tasks"][name]
    return record


def planned(dep: Deployment, machine_id: str) -> Build:
    """LAUNCH, the plan's build reports its summary: the machine awaits approval."""
    dep.api("POST", "/machines", {"spec": "guarded", "id": machine_id})
    send(dep, machine_id, "LAUNCH")
    build = dep.builds[-1]
    assert dep.deliver(build.report("succeeded", SUMMARY)) == "applied"
    settle(dep)
    assert dep.get(machine_id)[1]["state"] == "AWAIT_APPROVAL"
    return build


def test_the_apply_gets_exactly_the_approved_plan(dep: Deployment) -> None:
    plan = planned(dep, "g-1")
    variables = plan.variables
    stem = variables["STATEWRIGHT_STATE_KEY"].removesuffix(".tfstate")
    assert variables["STATEWRIGHT_ACTION"] == "plan"
    assert variables["STATEWRIGHT_PLAN_KEY"] == f"{stem}.plans/plan/2-1.tfplan"
    # Only a summary too big for the report would be stored, there.
    assert variables["STATEWRIGHT_OUTPUTS_KEY"] == f"{stem}.outputs/2-1-plan.json"
    assert "STATEWRIGHT_FAIL_ON_CHANGES" not in variables
    assert task(dep, "g-1", "plan")["output"] == SUMMARY
    send(dep, "g-1", "APPROVE")
    apply = dep.builds[-1]
    assert apply.variables["STATEWRIGHT_ACTION"] == "apply"
    assert apply.variables["STATEWRIGHT_PLAN_KEY"] == f"{stem}.plans/plan/2-1.tfplan"
    assert apply.variables["STATEWRIGHT_STATE_KEY"] == variables["STATEWRIGHT_STATE_KEY"]


def test_a_rejected_plan_is_made_again_and_the_apply_takes_the_new_one(dep: Deployment) -> None:
    planned(dep, "g-2")
    send(dep, "g-2", "REJECT")
    again = dep.builds[-1]
    assert again.variables["STATEWRIGHT_PLAN_KEY"].endswith(".plans/plan/4-1.tfplan")
    assert dep.deliver(again.report("succeeded", SUMMARY)) == "applied"
    settle(dep)
    send(dep, "g-2", "APPROVE")
    assert (
        dep.builds[-1].variables["STATEWRIGHT_PLAN_KEY"] == again.variables["STATEWRIGHT_PLAN_KEY"]
    )


def test_a_drift_check_with_changes_routes_to_failed_whichever_signal_comes_first(
    dep: Deployment,
) -> None:
    planned(dep, "g-3")
    send(dep, "g-3", "APPROVE")
    assert dep.deliver(dep.builds[-1].report("succeeded", {"size": 1})) == "applied"
    settle(dep)
    send(dep, "g-3", "CHECK")
    check = dep.builds[-1]
    assert check.variables["STATEWRIGHT_FAIL_ON_CHANGES"] == "true"
    # CodeBuild's SUCCEEDED (Terraform planned fine) first: it waits for the report,
    # which says the task fails.
    assert dep.deliver(check.state_change("SUCCEEDED")) == "awaiting_report"
    why = "the plan has changes (1 to add, 0 to change, 0 to destroy), and ..."
    report = check.report("failed", error=why)
    report["detail"].update(output=SUMMARY, error_type="DriftDetected")
    assert dep.deliver(report) == "applied"
    settle(dep)
    _, machine = dep.get("g-3")
    assert machine["state"] == "DRIFTED"
    assert machine["tasks"]["drift"]["error_type"] == "DriftDetected"


def test_an_apply_whose_plan_task_has_no_successful_plan_fails_saying_so() -> None:
    apply = fakes.invocation(
        "terraform",
        {"action": "apply", "plan": "plan", "source": {"type": "local", "location": "m"}},
        task="apply",
        succeeded={"other": {"epoch": 2, "attempt": 1}},
    )
    executor = CodeBuildExecutor(
        boto3.client("codebuild", region_name=REGION),
        "tf",
        env_name="test",
        bus_name="b",
    )
    with pytest.raises(ConfigurationError, match="task plan, which has no successful plan"):
        executor.environment(apply)
    ran = apply.model_copy(update={"succeeded": {"plan": SucceededRun(epoch=4, attempt=2)}})
    assert {"name": "STATEWRIGHT_PLAN_KEY", "value": mock.ANY, "type": "PLAINTEXT"} in (
        executor.environment(ran)
    )
    [plan_key] = [v["value"] for v in executor.environment(ran) if v["name"].endswith("PLAN_KEY")]
    assert plan_key.endswith(".plans/plan/4-2.tfplan")


def test_leaving_a_state_lets_the_build_finish_and_its_report_starts_the_next(
    dep: Deployment,
) -> None:
    """Graceful (the plan task): DESTROY while the plan runs; the destroy waits, and
    the plan build's own Task Finished (of the epoch left) starts it."""
    dep.api("POST", "/machines", {"spec": "guarded", "id": "g-5"})
    send(dep, "g-5", "LAUNCH")
    plan = dep.builds[-1]
    machine = send(dep, "g-5", "DESTROY")
    assert machine["state"] == "TEARDOWN" and dep.stopped == []
    down = machine["tasks"]["down"]
    assert (down["status"], down["waiting_for"]) == ("pending", ["plan"])
    assert len(dep.builds) == 1
    assert dep.deliver(plan.report("succeeded", SUMMARY)) == "applied"
    assert len(dep.builds) == 2 and dep.builds[-1].variables["STATEWRIGHT_ACTION"] == "destroy"
    assert task(dep, "g-5", "down")["status"] == "running"
    # CodeBuild's own news of the same end comes after: nothing more happens.
    assert dep.deliver(plan.state_change("SUCCEEDED")) in ("stale", "duplicate")
    assert len(dep.builds) == 2


@pytest.mark.parametrize("ended", ["FAILED", "TIMED_OUT"])
def test_a_failed_build_of_a_state_left_starts_the_next_by_its_build_state_change(
    dep: Deployment, ended: str
) -> None:
    dep.api("POST", "/machines", {"spec": "guarded", "id": "g-6"})
    send(dep, "g-6", "LAUNCH")
    plan = dep.builds[-1]
    send(dep, "g-6", "DESTROY")
    # No report (the build died): CodeBuild's Build State Change is the end.
    assert dep.deliver(plan.state_change(ended)) == "applied"
    assert dep.builds[-1].variables["STATEWRIGHT_ACTION"] == "destroy"
    assert task(dep, "g-6", "down")["status"] == "running"


def leave_a_lock(dep: Deployment, build: Build, who: str) -> dict[str, Any]:
    """What a build stopped mid-apply leaves: its run record (written before Terraform
    ran) and Terraform's lock object, taken by ``who``."""
    variables = build.variables
    started = datetime.now(UTC) - timedelta(minutes=3)
    build.record_run(BUILD_HOST, started)
    info = {
        "ID": "5d0b2a47-0f1e-4c61-9a57-3e1f7d2c8b90",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": who,
        "Version": "1.11.4",
        "Created": (started + timedelta(seconds=40)).isoformat().replace("+00:00", "Z"),
        "Path": f"{STATE_BUCKET}/{variables['STATEWRIGHT_STATE_KEY']}",
    }
    store(lock_key(variables["STATEWRIGHT_STATE_KEY"]), info)
    return info


def lock_of(build: Build) -> Any:
    key = lock_key(build.variables["STATEWRIGHT_STATE_KEY"])
    try:
        return json.loads(s3().get_object(Bucket=STATE_BUCKET, Key=key)["Body"].read())
    except s3().exceptions.NoSuchKey:
        return None


def test_a_forced_stop_and_the_next_run_releases_the_lock_the_stopped_build_left(
    dep: Deployment,
) -> None:
    """cancel: force (the apply): DESTROY stops its build; CodeBuild's STOPPED starts
    the destroy, which first releases the lock the stopped build left."""
    planned(dep, "g-7")
    send(dep, "g-7", "APPROVE")
    apply = dep.builds[-1]
    leave_a_lock(dep, apply, who=BUILD_HOST)
    machine = send(dep, "g-7", "DESTROY")
    assert dep.stopped == [apply.build_id]
    assert machine["tasks"]["down"]["status"] == "pending"  # until the stopped build ends
    assert lock_of(apply) is not None
    assert dep.deliver(apply.state_change("STOPPED")) == "applied"
    destroy = dep.builds[-1]
    assert destroy.variables["STATEWRIGHT_ACTION"] == "destroy"
    assert lock_of(apply) is None  # released before the destroy's build started
    history = dep.api("GET", "/machines/g-7/history")[1]["entries"]
    [ended] = [e for e in history if e["kind"] == "run_finished"]
    assert (ended["task"], ended["status"]) == ("apply", "failed")


def test_a_lock_someone_else_holds_stays(dep: Deployment) -> None:
    planned(dep, "g-8")
    send(dep, "g-8", "APPROVE")
    apply = dep.builds[-1]
    info = leave_a_lock(dep, apply, who="alice@laptop")
    send(dep, "g-8", "DESTROY")
    assert dep.deliver(apply.state_change("STOPPED")) == "applied"
    assert dep.builds[-1].variables["STATEWRIGHT_ACTION"] == "destroy"
    # The destroy's build starts and meets the lock: Terraform waits, then fails.
    assert lock_of(apply) == info


def test_a_timeout_stops_the_build_and_its_end_starts_the_retry_which_releases_the_lock(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconciler finds the apply past its timeout_seconds: StopBuild; the retry
    waits for the stopped build's end, then releases the lock it left and starts."""
    now = [datetime.now(UTC)]

    def clock() -> str:
        return now[0].isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # The service's clock, which the reconciler judges timeouts by.
    monkeypatch.setattr(wiring, "Service", functools.partial(Service, clock=clock))
    wiring._build.cache_clear()
    planned(dep, "g-9")
    send(dep, "g-9", "APPROVE")
    apply = dep.builds[-1]
    leave_a_lock(dep, apply, who=BUILD_HOST)
    now[0] += timedelta(seconds=601)
    dep.reconciler.handler({}, lambda_context("reconciler"))
    assert dep.stopped == [apply.build_id]
    retry = task(dep, "g-9", "apply")
    assert (retry["attempt"], retry["status"], retry["waiting_for"]) == (2, "pending", ["apply"])
    history = dep.api("GET", "/machines/g-9/history")[1]["entries"]
    assert [e["error_type"] for e in history if e["kind"] == "task_finished"][-1] == "Timeout"
    assert lock_of(apply) is not None
    assert dep.deliver(apply.state_change("STOPPED")) == "applied"
    second = dep.builds[-1]
    assert second.variables["STATEWRIGHT_ATTEMPT"] == "2"
    assert second.variables["STATEWRIGHT_PLAN_KEY"] == apply.variables["STATEWRIGHT_PLAN_KEY"]
    assert lock_of(apply) is None
