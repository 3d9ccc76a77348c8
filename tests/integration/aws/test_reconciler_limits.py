"""The reconciler goes on past a machine it cannot repair, and a build's outputs over
the task-output limit end in OutputTooLarge by every path (docs/aws.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from statewright.aws import reconciler

from tests.integration.aws.conftest import REGION, STATE_BUCKET, Deployment, lambda_context
from tests.integration.aws.test_terraform_and_reconciler import SPEC


@pytest.fixture
def env(deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    specs = tmp_path / "specs"
    (specs / "modules" / "net").mkdir(parents=True)
    (specs / "modules" / "net" / "main.tf").write_text('output "vpc_id" { value = "v" }\n')
    (specs / "env.yml").write_text(SPEC)
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(specs))
    return deployment


def launch(dep: Deployment, machine_id: str) -> None:
    assert dep.api("POST", "/machines", {"spec": "env", "id": machine_id})[0] == 201
    assert dep.api("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})[0] == 202


def test_one_build_that_cannot_be_completed_leaves_the_others_to_complete(
    env: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("e-1", "e-2", "e-3"):
        launch(env, name)
    complete = reconciler.codebuild_state_change

    def fragile(rt: Any, detail: dict[str, Any]) -> str:
        variables = detail["additional-information"]["environment"]["environment-variables"]
        if {"name": "STATEWRIGHT_MACHINE_ID", "value": "e-2", "type": "PLAINTEXT"} in variables:
            raise KeyError("a field this build lacks")
        return complete(rt, detail)

    monkeypatch.setattr(reconciler, "codebuild_state_change", fragile)
    report = env.reconciler.handler({}, lambda_context("reconciler"))
    assert report["builds_checked"] == 3 and report["builds_completed"] == 2
    assert [e.split(":")[0] for e in report["errors"]] == ["e-2"]
    states = {n: env.get(n)[1]["tasks"]["network"]["status"] for n in ("e-1", "e-2", "e-3")}
    assert states == {"e-1": "succeeded", "e-2": "running", "e-3": "succeeded"}


@pytest.mark.parametrize("size", [40_000, 2_000_000], ids=["over 32 KiB", "over 1 MiB"])
def test_stored_outputs_over_the_limit_fail_the_apply_with_output_too_large(
    env: Deployment, size: int
) -> None:
    launch(env, "big")
    [build] = env.builds
    outputs = {"blob": {"sensitive": False, "type": "string", "value": "x" * size}}
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=STATE_BUCKET,
        Key=build.variables["STATEWRIGHT_OUTPUTS_KEY"],
        Body=json.dumps(outputs, indent=2).encode(),
    )
    assert env.deliver(build.state_change("SUCCEEDED")) == "applied"
    record = env.get("big")[1]["tasks"]["network"]
    assert (record["status"], record["error_type"], record["output"]) == (
        "failed",
        "OutputTooLarge",
        None,
    )
    assert "32 KiB" in record["error"]
