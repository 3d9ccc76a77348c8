"""A run may report only its own attempt, whatever the executor: the dispatcher applies a
``Task Finished`` of a Lambda task only with the report token the attempt's task-runner
invocation carried (docs/security.md#task-reports-a-run-may-report-only-its-own-attempt).
The build's side is in test_terraform_and_reconciler.py, a plugin's in
tests/integration/plugins/test_example_plugin.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.integration.aws.deployment import Deployment, emitted, eventbridge


def launched(dep: Deployment, *machine_ids: str) -> list[dict[str, Any]]:
    """Each machine launched and its db-setup run by the task runner: the real reports
    (Task Finished as the runner published them), in the order of ``machine_ids``."""
    for machine_id in machine_ids:
        dep.api("POST", "/machines", {"spec": "preview-env", "id": machine_id})
        dep.api("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})
    for invocation in dep.lambda_starts:
        dep.run_task_runner(invocation)
    reports = dep.dispatched(dep.published())
    by_machine = {r["detail"]["machine_id"]: r for r in reports}
    return [by_machine[m] for m in machine_ids]


def test_a_lambda_tasks_report_needs_the_token_of_its_own_attempt(
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dep = deployment
    real, other_machines = launched(dep, "l-1", "l-2")
    assert [(r["source"], r["detail-type"]) for r in (real, other_machines)] == [
        ("statewright", "Task Finished")
    ] * 2
    # The task runner echoed the token the dispatcher put in its invocation payload.
    assert real["detail"]["report_token"] == dep.lambda_starts[0].report_token != ""
    _, before = dep.get("l-1")
    forged_tokens = dep.forged_tokens(real["detail"], other_machines["detail"]["report_token"])
    capsys.readouterr()
    for forged in forged_tokens:
        for status in ("succeeded", "failed"):
            report = copy.deepcopy(real)
            report["detail"].update(status=status, output={"evil": True}, error="forged")
            del report["detail"]["report_token"]
            if forged is not None:
                report["detail"]["report_token"] = forged
            # Dropped without raising: EventBridge does not retry it into the DLQ.
            assert dep.deliver(report) == "refused", forged
    assert emitted(capsys.readouterr().out)["events_refused"] == 2 * len(forged_tokens)
    assert "of machine l-1 does not carry that attempt's report token" in caplog.text
    _, after = dep.get("l-1")
    assert after == before and after["tasks"]["db-setup"]["status"] == "running"

    # The runs' own reports complete their tasks.
    assert dep.deliver(real) == "applied"
    assert dep.deliver(other_machines) == "applied"
    for machine_id in ("l-1", "l-2"):
        assert dep.get(machine_id)[1]["tasks"]["db-setup"]["status"] == "succeeded"


def test_a_report_for_a_finished_attempt_with_a_forged_token_is_refused_not_stale(
    deployment: Deployment,
) -> None:
    """The token is checked before anything else: a forger learns nothing about which
    attempts are current from the outcome, and nothing of an old attempt is reopened."""
    dep = deployment
    [real] = launched(dep, "l-3")
    assert dep.deliver(real) == "applied"
    forged = copy.deepcopy(real)
    forged["detail"]["report_token"] = "f" * 64
    assert dep.deliver(forged) == "refused"
    assert dep.deliver(real) == "duplicate"


def test_a_task_runner_failure_needs_the_token_of_the_payload_it_was_invoked_with(
    deployment: Deployment,
) -> None:
    """Lambda's on-failure destination carries the invocation's payload; a failure
    whose payload was not the one the dispatcher queued (token missing or altered) is
    refused like any forged report."""
    dep = deployment
    dep.api("POST", "/machines", {"spec": "preview-env", "id": "c-2"})
    dep.api("POST", "/machines/c-2/events", {"event": "LAUNCH"})
    payload = json.loads(dep.lambda_starts[0].model_dump_json())

    def failure(request_payload: dict[str, Any]) -> dict[str, Any]:
        return eventbridge(
            "lambda",
            "Lambda Function Invocation Result - Failure",
            {
                "requestContext": {
                    "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:"
                    "statewright-test-taskrunner:$LATEST",
                    "condition": "RetriesExhausted",
                },
                "requestPayload": request_payload,
                "responsePayload": {"errorType": "Boom", "errorMessage": "forged"},
            },
        )

    without = {k: v for k, v in payload.items() if k != "report_token"}
    altered = {**payload, "report_token": payload["report_token"][::-1]}
    for forged in (without, altered, {**payload, "report_token": None}):
        assert dep.deliver(failure(forged)) == "refused"
    assert dep.get("c-2")[1]["tasks"]["db-setup"]["status"] == "running"
    assert dep.deliver(failure(payload)) == "applied"
    assert dep.get("c-2")[1]["tasks"]["db-setup"]["status"] == "failed"
