"""Terraform tasks in AWS terms, and the reconciler: a spec of our own whose PROVISION
applies a module shipped inside the specs folder (a ``local`` source). A build's
outputs travel in its report (an object beside the state only when they are too big for
it), CodeBuild's SUCCEEDED waits for that report, and a report that never comes ends in
the attempt's timeout. The reconciler goes on past a machine it cannot repair, outputs
over the task-output limit end in OutputTooLarge by every path, and a build may report
only its own task (its report token)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
import pytest
from statewright.aws import reconciler

from bench.aws_calls import CallLog
from tests.integration.aws.deployment import (
    REGION,
    STATE_BUCKET,
    Deployment,
    deploy_specs,
    emitted,
    lambda_context,
)
from tests.integration.aws.test_scheduler_timers import schedules

SPEC = """\
version: 1.0
events: [LAUNCH, DESTROY]
states:
  INIT: {on: {LAUNCH: [{action: advance, state: PROVISION}]}}
  PROVISION:
    tasks: [network]
    on: {NEXT: [{action: advance, state: RUN}], DESTROY: [{action: advance, state: TEARDOWN}]}
  RUN: {on: {DESTROY: [{action: advance, state: TEARDOWN}]}}
  TEARDOWN: {terminal: true, tasks: [network-down]}
tasks:
  network:
    executor: terraform
    config:
      action: apply
      source: {type: local, location: modules/net}
      variables: {cidr: 10.0.0.0/16}
  network-down:
    executor: terraform
    config: {action: destroy, source: {type: local, location: modules/net}}
"""
# The build's result (sensitive outputs already left out).
STORED = {"outputs": {"vpc_id": "vpc-123"}, "redacted_outputs": ["db_password"]}


@pytest.fixture
def env_spec(deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    module = 'output "vpc_id" { value = "vpc-123" }\n'
    deploy_specs(tmp_path / "specs", monkeypatch, {"modules/net/main.tf": module, "env.yml": SPEC})
    return deployment


@pytest.fixture
def builds_failed() -> Iterator[None]:
    """CodeBuild answers BatchGetBuilds with every build FAILED (moto calls every build
    it is asked about SUCCEEDED)."""

    def failed(parsed: dict[str, Any], **_: Any) -> None:
        for build in parsed.get("builds", []):
            build["buildStatus"] = "FAILED"

    hook = ("after-call.codebuild.BatchGetBuilds", failed)
    botocore.handlers.BUILTIN_HANDLERS.append(hook)  # sessions made from now on
    yield
    botocore.handlers.BUILTIN_HANDLERS.remove(hook)


def objects() -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=STATE_BUCKET)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_an_apply_completes_from_its_report_alone_and_leaves_no_object(
    env_spec: Deployment,
) -> None:
    dep = env_spec
    assert (
        dep.api("POST", "/machines", {"spec": "env", "id": "e-1", "metadata": {"team": "a"}})[0]
        == 201
    )
    assert dep.api("POST", "/machines/e-1/events", {"event": "LAUNCH"})[0] == 202
    [build] = dep.builds
    variables = build.variables
    assert variables["STATEWRIGHT_SOURCE_TYPE"] == "local"
    assert variables["STATEWRIGHT_SOURCE_LOCATION"] == "modules/net"
    assert variables["STATEWRIGHT_STATE_KEY"].startswith("test/e-1/")
    # The variables travel through an item of the table, not the build's environment.
    assert not any("10.0.0.0/16" in value for value in variables.values())
    assert "STATEWRIGHT_VARIABLES_KEY" not in variables
    assert build.terraform_variables() == {
        "team": "a",
        "cidr": "10.0.0.0/16",
        "stack_id": "e-1",
    }
    dep.published()  # the machine's state changes so far
    # CodeBuild's SUCCEEDED before the report: its report was accepted before the build
    # could succeed, so the dispatcher waits for it and completes nothing.
    assert dep.deliver(build.state_change("SUCCEEDED")) == "awaiting_report"
    assert dep.get("e-1")[1]["tasks"]["network"]["status"] == "running"
    assert dep.published() == []
    report = build.report("succeeded", STORED["outputs"])
    report["detail"]["redacted_outputs"] = STORED["redacted_outputs"]
    assert dep.deliver(report) == "applied"
    assert dep.deliver(build.state_change("SUCCEEDED")) == "duplicate"
    assert objects() == []  # no variables object, no outputs object: S3 is not on the path
    for event in dep.dispatched(dep.published()):
        dep.deliver(event)  # NEXT
    _, machine = dep.get("e-1")
    assert machine["state"] == "RUN"
    assert machine["tasks"]["network"]["output"] == {"vpc_id": "vpc-123"}
    assert machine["tasks"]["network"]["redacted_outputs"] == ["db_password"]
    # DESTROY uses the same source, so the same state key.
    dep.api("POST", "/machines/e-1/events", {"event": "DESTROY"})
    assert dep.builds[1].variables["STATEWRIGHT_STATE_KEY"] == variables["STATEWRIGHT_STATE_KEY"]
    assert dep.builds[1].variables["STATEWRIGHT_ACTION"] == "destroy"


def test_outputs_too_big_for_the_report_are_read_from_the_object_it_names(
    env_spec: Deployment,
) -> None:
    dep = env_spec
    launch(dep, "e-7")
    [build] = dep.builds
    big = {"outputs": {"vpc_id": "vpc-123", "notes": "n" * 20_000}, "redacted_outputs": ["pw"]}
    report = build.report_of_stored(big)
    assert dep.deliver(build.state_change("SUCCEEDED")) == "awaiting_report"
    assert dep.deliver(report) == "applied"
    record = dep.get("e-7")[1]["tasks"]["network"]
    assert (record["status"], record["output"]) == ("succeeded", big["outputs"])
    assert record["redacted_outputs"] == ["pw"]


def test_a_report_may_name_only_its_own_attempts_outputs_object(env_spec: Deployment) -> None:
    """A report naming any other object (another machine's outputs, a state file) is
    refused without reading it; the attempt goes on waiting for its own report."""
    dep = env_spec
    launch(dep, "e-8")
    launch(dep, "e-9")
    own, other = dep.builds
    other.report_of_stored(STORED)
    for key in (
        other.variables["STATEWRIGHT_OUTPUTS_KEY"],
        own.variables["STATEWRIGHT_STATE_KEY"],
        own.variables["STATEWRIGHT_OUTPUTS_KEY"].replace("-1-network", "-2-network"),
        own.variables["STATEWRIGHT_OUTPUTS_KEY"].replace("test/", "prod/"),
        "../" + own.variables["STATEWRIGHT_OUTPUTS_KEY"],
        7,
    ):
        report = own.report("succeeded")
        report["detail"]["outputs_object"] = key
        assert dep.deliver(report) == "refused", key
    assert dep.get("e-8")[1]["tasks"]["network"]["status"] == "running"


def test_outputs_stored_in_terraforms_own_shape_are_not_kept(env_spec: Deployment) -> None:
    """An object in `terraform output -json`'s own shape (sensitive values included) is
    not the buildspec's: none of it reaches the machine."""
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-5"})
    dep.api("POST", "/machines/e-5/events", {"event": "LAUNCH"})
    [build] = dep.builds
    raw = {"db_password": {"sensitive": True, "type": "string", "value": "hunter2"}}
    assert dep.deliver(build.report_of_stored(raw)) == "applied"
    _, machine = dep.get("e-5")
    record = machine["tasks"]["network"]
    assert record["status"] == "succeeded" and record["output"] is None
    assert "hunter2" not in json.dumps(machine)


def test_the_builds_report_carries_the_redacted_names(env_spec: Deployment) -> None:
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-6"})
    dep.api("POST", "/machines/e-6/events", {"event": "LAUNCH"})
    [build] = dep.builds
    report = build.report("succeeded", {"vpc_id": "vpc-1"})
    report["detail"]["redacted_outputs"] = ["db_password"]
    assert dep.deliver(report) == "applied"
    record = dep.get("e-6")[1]["tasks"]["network"]
    assert record["output"] == {"vpc_id": "vpc-1"}
    assert record["redacted_outputs"] == ["db_password"]


def test_a_build_may_report_only_its_own_task(
    env_spec: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """User Terraform runs with the build's role, which may put Task Finished on the bus:
    a report without the report token of exactly the attempt it names changes nothing
    and is counted; the build's own report (the token from its environment) completes
    the task; CodeBuild's Build State Change carries the token the build was started with."""
    dep = env_spec
    for machine_id in ("t-1", "t-2"):
        dep.api("POST", "/machines", {"spec": "env", "id": machine_id})
        dep.api("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})
    own, other_machines = dep.builds
    _, before = dep.get("t-1")
    real = own.report("succeeded", {"vpc_id": "vpc-1"})
    forged_tokens = dep.forged_tokens(
        real["detail"], other_machines.variables["STATEWRIGHT_REPORT_TOKEN"]
    )
    capsys.readouterr()
    for forged in forged_tokens:
        for status in ("succeeded", "failed"):
            report = own.report(status, {"vpc_id": "vpc-evil"}, error="forged")
            del report["detail"]["report_token"]
            if forged is not None:
                report["detail"]["report_token"] = forged
            assert dep.deliver(report) == "refused", forged
    assert emitted(capsys.readouterr().out)["events_refused"] == 2 * len(forged_tokens)
    _, after = dep.get("t-1")
    assert after == before and after["tasks"]["network"]["status"] == "running"

    assert dep.deliver(real) == "applied"
    assert dep.get("t-1")[1]["tasks"]["network"]["output"] == {"vpc_id": "vpc-1"}
    # The other machine's build failed before it could report: CodeBuild's event says so.
    assert dep.deliver(other_machines.state_change("FAILED")) == "applied"
    assert dep.get("t-2")[1]["tasks"]["network"]["status"] == "failed"


def test_leaving_a_state_lets_its_build_finish_and_its_end_starts_the_next(
    env_spec: Deployment,
) -> None:
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-2"})
    dep.api("POST", "/machines/e-2/events", {"event": "LAUNCH"})
    status, machine = dep.api("POST", "/machines/e-2/events", {"event": "DESTROY"})
    assert status == 202 and machine["state"] == "TEARDOWN"
    assert machine["tasks"]["network"]["status"] == "cancelled"
    # Graceful: the apply's build goes on; the destroy waits for it, unstarted.
    assert dep.stopped == []
    assert len(dep.builds) == 1
    down = machine["tasks"]["network-down"]
    assert (down["status"], down["waiting_for"]) == ("pending", ["network"])
    # The build's end, of the state left, starts the destroy on the same state.
    assert dep.deliver(dep.builds[0].state_change("SUCCEEDED")) == "applied"
    assert len(dep.builds) == 2
    assert dep.get("e-2")[1]["tasks"]["network-down"]["status"] == "running"
    assert dep.deliver(dep.builds[0].state_change("SUCCEEDED")) == "stale"


def test_a_report_that_never_comes_ends_in_the_attempts_timeout(env_spec: Deployment) -> None:
    """SUCCEEDED waits for the report; if it is lost for good (past EventBridge's retries,
    in the rule's DLQ), the attempt's TIMEOUT timer fails it with Timeout, and the
    build's end, seen again, frees the state its run held."""
    dep = env_spec
    launch(dep, "lost")
    [build] = dep.builds
    assert dep.deliver(build.state_change("SUCCEEDED")) == "awaiting_report"
    [timeout] = [t for name, t in schedules().items() if name.startswith("timeout-")]
    # EventBridge Scheduler invokes the dispatcher with the timer when it is due.
    assert dep.deliver(json.loads(timeout["Target"]["Input"])) == "applied"
    _, machine = dep.get("lost")
    record = machine["tasks"]["network"]
    assert (record["status"], record["error_type"]) == ("failed", "Timeout")
    assert dep.stopped == [build.build_id]  # StopBuild of a finished build: harmless
    # The build's end again (the reconciler asks CodeBuild): its run's state is freed.
    assert dep.deliver(build.state_change("SUCCEEDED")) == "applied"
    history = dep.api("GET", "/machines/lost/history")[1]["entries"]
    assert [e["kind"] for e in history][-1] == "run_finished"
    # A report surfacing after all (redriven from the DLQ) changes nothing.
    assert dep.deliver(build.report("succeeded", {"vpc_id": "late"})) == "duplicate"
    assert dep.get("lost")[1]["tasks"]["network"]["output"] is None


def test_the_reconciler_fails_builds_that_failed_without_a_word(
    env_spec: Deployment, builds_failed: None
) -> None:
    dep = env_spec
    launch(dep, "e-4")
    # Neither the report nor CodeBuild's event arrives; the build ended FAILED.
    report = dep.reconciler.handler({}, lambda_context("reconciler"))
    assert report["builds_checked"] == 1 and report["builds_completed"] == 1
    record = dep.get("e-4")[1]["tasks"]["network"]
    assert record["status"] == "failed" and "ended FAILED" in record["error"]


def test_the_reconciler_leaves_a_succeeded_build_to_its_report(env_spec: Deployment) -> None:
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-3"})
    dep.api("POST", "/machines/e-3/events", {"event": "LAUNCH"})
    # Neither the report nor CodeBuild's event has arrived; moto's build has finished.
    report = dep.reconciler.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context("reconciler")
    )
    assert report["builds_checked"] == 1 and report["builds_completed"] == 0
    assert report["outcomes"] == {"awaiting_report": 1}
    assert dep.get("e-3")[1]["tasks"]["network"]["status"] == "running"
    # The report, late (EventBridge retried its delivery), completes the task.
    assert dep.deliver(dep.builds[0].report("succeeded", {"vpc_id": "vpc-3"})) == "applied"
    _, machine = dep.get("e-3")
    assert machine["tasks"]["network"]["status"] == "succeeded"
    # Satisfied: its NEXT is on the bus. Lose it, and the next run publishes it again.
    assert [e["detail"]["event"] for e in dep.dispatched(dep.published())] == ["NEXT"]
    again = dep.reconciler.handler({}, lambda_context("reconciler"))
    assert again["recovery"]["events_published"] == 1 and again["builds_checked"] == 0
    [nxt] = dep.dispatched(dep.published())
    assert dep.deliver(nxt) == "applied"
    assert dep.get("e-3")[1]["state"] == "RUN"
    assert [e["detail-type"] for e in dep.published()] == ["Machine State Changed"]
    quiet = dep.reconciler.handler({}, lambda_context("reconciler"))
    assert quiet["recovery"]["machines_repaired"] == 0 and dep.published() == []


def test_the_reconciler_reads_no_idle_machine(env_spec: Deployment) -> None:
    dep = env_spec
    with CallLog().installed() as log:  # before the first call: the runtime's clients
        for n in range(12):
            dep.api("POST", "/machines", {"spec": "env", "id": f"idle-{n}"})  # INIT: waiting
        dep.api("POST", "/machines", {"spec": "env", "id": "busy"})
        dep.api("POST", "/machines/busy/events", {"event": "LAUNCH"})  # its build's news lost
        with log.acting("reconciler"):
            report = dep.reconciler.handler({}, lambda_context("reconciler"))
    assert report["recovery"]["machines_scanned"] == 1 and report["builds_checked"] == 1
    read = json.dumps([c.response for c in log.calls if c.service == "dynamodb"], default=str)
    assert "MACHINE#busy" in read
    assert "idle-" not in read  # not one of them was read, by a query or any other call


def test_a_local_module_outside_the_specs_folder_fails_its_task_with_a_reason(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "env.yml").write_text(SPEC.replace("location: modules/net", "location: ../elsewhere"))
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(specs))
    dep = deployment
    dep.api("POST", "/machines", {"spec": "env", "id": "e-4"})
    status, machine = dep.api("POST", "/machines/e-4/events", {"event": "LAUNCH"})
    assert status == 202
    record = machine["tasks"]["network"]
    assert machine["status"] == "failed" and record["status"] == "failed"
    assert "outside the specs folder" in record["error"]
    assert dep.builds == []


# ---- one machine never stops the reconciler; outputs over the limit ------------------------


def launch(dep: Deployment, machine_id: str) -> None:
    assert dep.api("POST", "/machines", {"spec": "env", "id": machine_id})[0] == 201
    assert dep.api("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})[0] == 202


def test_one_build_that_cannot_be_completed_leaves_the_others_to_complete(
    env_spec: Deployment, monkeypatch: pytest.MonkeyPatch, builds_failed: None
) -> None:
    for name in ("e-1", "e-2", "e-3"):
        launch(env_spec, name)
    complete = reconciler.codebuild_state_change

    def fragile(rt: Any, detail: dict[str, Any]) -> str:
        variables = detail["additional-information"]["environment"]["environment-variables"]
        if {"name": "STATEWRIGHT_MACHINE_ID", "value": "e-2", "type": "PLAINTEXT"} in variables:
            raise KeyError("a field this build lacks")
        return complete(rt, detail)

    monkeypatch.setattr(reconciler, "codebuild_state_change", fragile)
    report = env_spec.reconciler.handler({}, lambda_context("reconciler"))
    assert report["builds_checked"] == 3 and report["builds_completed"] == 2
    assert [e.split(":")[0] for e in report["errors"]] == ["e-2"]
    states = {n: env_spec.get(n)[1]["tasks"]["network"]["status"] for n in ("e-1", "e-2", "e-3")}
    assert states == {"e-1": "failed", "e-2": "running", "e-3": "failed"}


@pytest.mark.parametrize("size", [40_000, 2_000_000], ids=["over 32 KiB", "over 1 MiB"])
def test_stored_outputs_over_the_limit_fail_the_apply_with_output_too_large(
    env_spec: Deployment, size: int
) -> None:
    launch(env_spec, "big")
    [build] = env_spec.builds
    outputs = {"outputs": {"blob": "x" * size}, "redacted_outputs": []}
    assert env_spec.deliver(build.report_of_stored(outputs, indent=2)) == "applied"
    record = env_spec.get("big")[1]["tasks"]["network"]
    assert (record["status"], record["error_type"], record["output"]) == (
        "failed",
        "OutputTooLarge",
        None,
    )
    assert "32 KiB" in record["error"]


def test_a_build_that_stored_why_its_task_fails_fails_it(env_spec: Deployment) -> None:
    """A drift check's build ends SUCCEEDED (Terraform planned fine) but its result,
    stored because it is too big for the report, says the task fails (DriftDetected)."""
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-9"})
    dep.api("POST", "/machines/e-9/events", {"event": "LAUNCH"})
    [build] = dep.builds
    summary = {"changes": True, "add": 1, "change": 0, "destroy": 0, "resources": []}
    why = (
        "the plan has changes (1 to add, 0 to change, 0 to destroy), and the task says "
        "fail_on_changes: the environment drifted from its configuration"
    )
    stored = {
        "outputs": summary,
        "redacted_outputs": [],
        "error": why,
        "error_type": "DriftDetected",
    }
    assert dep.deliver(build.state_change("SUCCEEDED")) == "awaiting_report"
    assert dep.deliver(build.report_of_stored(stored)) == "applied"
    record = dep.get("e-9")[1]["tasks"]["network"]
    assert record["status"] == "failed"
    assert (record["error_type"], record["error"]) == ("DriftDetected", why)
    assert record["output"] == summary
