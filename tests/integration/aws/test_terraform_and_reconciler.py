"""Terraform tasks in AWS terms, and the reconciler: a spec of our own whose PROVISION
applies a module shipped inside the specs folder (a ``local`` source), so the outputs a
build stored beside its state are visible afterwards. The reconciler goes on past a
machine it cannot repair, outputs over the task-output limit end in OutputTooLarge by
every path, and a build may report only its own task (its report token)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
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
# What the buildspec stores beside the state (sensitive outputs already left out).
STORED = {"outputs": {"vpc_id": "vpc-123"}, "redacted_outputs": ["db_password"]}


@pytest.fixture
def env_spec(deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    module = 'output "vpc_id" { value = "vpc-123" }\n'
    deploy_specs(tmp_path / "specs", monkeypatch, {"modules/net/main.tf": module, "env.yml": SPEC})
    return deployment


def store_outputs(key: str, stored: object = STORED) -> None:
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=STATE_BUCKET, Key=key, Body=json.dumps(stored).encode()
    )


def test_a_build_state_change_completes_the_apply_with_the_stored_outputs(
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
    # The variables travel through the state bucket, not the build's environment.
    assert not any("10.0.0.0/16" in value for value in variables.values())
    assert build.terraform_variables() == {
        "team": "a",
        "cidr": "10.0.0.0/16",
        "stack_id": "e-1",
    }
    store_outputs(variables["STATEWRIGHT_OUTPUTS_KEY"])
    assert dep.deliver(build.state_change("SUCCEEDED")) == "applied"
    # The buildspec's own report is now a duplicate.
    assert dep.deliver(build.report("succeeded", STORED["outputs"])) == "duplicate"
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


def test_outputs_stored_in_terraforms_own_shape_are_not_kept(env_spec: Deployment) -> None:
    """A build of an older buildspec stored `terraform output -json` as it is, sensitive
    values included: none of it reaches the machine."""
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-5"})
    dep.api("POST", "/machines/e-5/events", {"event": "LAUNCH"})
    [build] = dep.builds
    raw = {"db_password": {"sensitive": True, "type": "string", "value": "hunter2"}}
    store_outputs(build.variables["STATEWRIGHT_OUTPUTS_KEY"], raw)
    assert dep.deliver(build.state_change("SUCCEEDED")) == "applied"
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
    # The other machine's build, without a report of its own, is completed by CodeBuild.
    store_outputs(other_machines.variables["STATEWRIGHT_OUTPUTS_KEY"])
    assert dep.deliver(other_machines.state_change("SUCCEEDED")) == "applied"
    assert dep.get("t-2")[1]["tasks"]["network"]["status"] == "succeeded"


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


def test_the_reconciler_completes_builds_whose_events_never_came(env_spec: Deployment) -> None:
    dep = env_spec
    dep.api("POST", "/machines", {"spec": "env", "id": "e-3"})
    dep.api("POST", "/machines/e-3/events", {"event": "LAUNCH"})
    # Neither the report nor CodeBuild's event arrives; moto's build has finished.
    report = dep.reconciler.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context("reconciler")
    )
    assert report["builds_checked"] == 1 and report["builds_completed"] == 1
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
    assert report["recovery"]["machines_scanned"] == 1 and report["builds_completed"] == 1
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
    env_spec: Deployment, monkeypatch: pytest.MonkeyPatch
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
    assert states == {"e-1": "succeeded", "e-2": "running", "e-3": "succeeded"}


@pytest.mark.parametrize("size", [40_000, 2_000_000], ids=["over 32 KiB", "over 1 MiB"])
def test_stored_outputs_over_the_limit_fail_the_apply_with_output_too_large(
    env_spec: Deployment, size: int
) -> None:
    launch(env_spec, "big")
    [build] = env_spec.builds
    outputs = {"outputs": {"blob": "x" * size}, "redacted_outputs": []}
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=STATE_BUCKET,
        Key=build.variables["STATEWRIGHT_OUTPUTS_KEY"],
        Body=json.dumps(outputs, indent=2).encode(),
    )
    assert env_spec.deliver(build.state_change("SUCCEEDED")) == "applied"
    record = env_spec.get("big")[1]["tasks"]["network"]
    assert (record["status"], record["error_type"], record["output"]) == (
        "failed",
        "OutputTooLarge",
        None,
    )
    assert "32 KiB" in record["error"]


def test_a_build_that_stored_why_its_task_fails_fails_it_by_either_signal(
    env_spec: Deployment,
) -> None:
    """A drift check's build ends SUCCEEDED (Terraform planned fine) but stores that the
    task fails (DriftDetected): the Build State Change says what its report says."""
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
    store_outputs(build.variables["STATEWRIGHT_OUTPUTS_KEY"], stored)
    assert dep.deliver(build.state_change("SUCCEEDED")) == "applied"
    record = dep.get("e-9")[1]["tasks"]["network"]
    assert record["status"] == "failed"
    assert (record["error_type"], record["error"]) == ("DriftDetected", why)
    assert record["output"] == summary
