"""A whole lifecycle of specs/preview-env.yml through functions/dispatcher/handler.py
under moto: create (API), LAUNCH, the Lambda task's completion (the task runner's
report, fed back as EventBridge delivers it), NEXT (as published), DESTROY (a user's
bus rule), the Terraform task's completion (the buildspec's report and CodeBuild's own
Build State Change), deletion.

Run once in order and once with every event delivered twice and out of order; both end
in the same states at every stage."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from statewright.aws.dynamodb_store import DynamoStore

from tests.contract.backends_aws import break_dynamodb_machine
from tests.integration.aws.deployment import (
    REGION,
    TABLE,
    Deployment,
    emitted,
    eventbridge,
    lambda_context,
)

OUTPUTS = {"db_url": {"sensitive": False, "type": "string", "value": "postgres://pr-1"}}
VOLATILE_TASK_FIELDS = ("started_at", "finished_at")


def snapshot(machine: dict[str, Any]) -> dict[str, Any]:
    """The machine without the wall-clock fields."""
    data = copy.deepcopy(machine)
    for name in ("created_at", "updated_at"):
        data.pop(name)
    for record in data["tasks"].values():
        for name in VOLATILE_TASK_FIELDS:
            record.pop(name)
    return data


def deliver_all(dep: Deployment, events: list[dict[str, Any]], *, messy: bool) -> list[str]:
    """EventBridge delivering ``events``: in order, or each twice with the order reversed."""
    if not messy:
        return [dep.deliver(e) for e in events]
    doubled = [e for event in reversed(events) for e in (event, event)]
    return [dep.deliver(e) for e in doubled]


def lifecycle(dep: Deployment, *, messy: bool, report_first: bool) -> dict[str, Any]:
    """Drive one machine from creation to deletion; returns snapshots by stage."""
    stages: dict[str, Any] = {}
    delivered: list[dict[str, Any]] = []

    status, machine = dep.api(
        "POST", "/machines", {"spec": "preview-env", "id": "pr-1", "metadata": {"branch": "b"}}
    )
    assert status == 201, machine
    assert machine["state"] == "INIT" and machine["status"] == "waiting"
    stages["created"] = snapshot(machine)

    launch = {"event": "LAUNCH", "metadata": {"owner": "ana"}}
    key = {"Idempotency-Key": f"launch-pr-1-{'messy' if messy else 'in-order'}"}
    status, machine = dep.api("POST", "/machines/pr-1/events", launch, headers=key)
    assert status == 202, machine
    if messy:  # a client retrying its request gets the first answer, and nothing more
        assert dep.api("POST", "/machines/pr-1/events", launch, headers=key) == (202, machine)
    assert machine["state"] == "PROVISION"
    assert machine["tasks"]["db-setup"]["status"] == "running"
    assert len(dep.lambda_starts) == 1
    stages["launched"] = snapshot(machine)

    # The task runner (queued by the dispatcher) invokes db-setup and reports to the bus.
    dep.run_task_runner(dep.lambda_starts[0])
    finished = dep.dispatched(dep.published())
    assert [e["detail-type"] for e in finished] == ["Task Finished"]
    outcomes = deliver_all(dep, finished, messy=messy)
    assert outcomes[0] == "applied" and set(outcomes[1:]) <= {"duplicate", "stale"}
    delivered += finished

    # Satisfied: NEXT was published; applied when it comes back.
    nxt = dep.dispatched(dep.published())
    assert [(e["detail-type"], e["detail"]["event"]) for e in nxt] == [("Machine Event", "NEXT")]
    outcomes = deliver_all(dep, nxt, messy=messy)
    assert outcomes[0] == "applied" and set(outcomes[1:]) <= {"duplicate", "stale"}
    delivered += nxt
    if messy:  # the Lambda task's report again, now two states late
        assert deliver_all(dep, finished, messy=True) == ["stale", "stale"]
    status, machine = dep.get("pr-1")
    assert status == 200 and machine["state"] == "RUN" and machine["status"] == "waiting"
    output = machine["tasks"]["db-setup"]["output"]
    assert output["machine_id"] == "pr-1" and output["metadata"] == {"branch": "b", "owner": "ana"}
    stages["running"] = snapshot(machine)

    # A user's rule sends DESTROY on the bus, in CloudSeam's message shape.
    destroy = eventbridge("my.scheduler", "Machine Event", {"stackId": "pr-1", "action": "DESTROY"})
    assert dep.deliver(destroy) == "applied"
    if messy:  # DESTROY again: not accepted in TEARDOWN, dropped without an error
        assert dep.deliver(destroy) == "refused"
    delivered.append(destroy)
    status, machine = dep.get("pr-1")
    assert machine["state"] == "TEARDOWN" and machine["tasks"]["db-teardown"]["status"] == "running"
    assert len(dep.builds) == 1
    stages["tearing down"] = snapshot(machine)

    # The build applies and reports its outputs; CodeBuild says it succeeded.
    build = dep.builds[0]
    signals = [build.report("succeeded", OUTPUTS), build.state_change("SUCCEEDED")]
    if not report_first:
        signals.reverse()
    outcomes = [dep.deliver(e) for e in signals]
    if report_first:
        # The other signal finds the machine gone (its terminal state was satisfied).
        assert outcomes[0] == "applied" and outcomes[1] in {"stale", "refused"}
    else:
        # SUCCEEDED waits for the report (accepted before the build could succeed).
        assert outcomes == ["awaiting_report", "applied"]
    if messy:
        assert {dep.deliver(e) for e in signals} <= {"stale", "refused"}
    delivered += signals

    assert dep.get("pr-1")[0] == 404
    kinds = [e["detail-type"] for e in dep.published()]
    assert kinds.count("Machine Deleted") == 1
    # Every event ever delivered, once more: nothing comes back to life.
    for event in delivered:
        assert dep.deliver(event) in {"stale", "duplicate", "refused"}
    assert dep.get("pr-1")[0] == 404
    return stages


@pytest.mark.parametrize("report_first", [True, False], ids=["report-first", "codebuild-first"])
def test_a_lifecycle_ends_the_same_however_events_arrive(
    deployment: Deployment, report_first: bool
) -> None:
    in_order = lifecycle(deployment, messy=False, report_first=report_first)
    deployment.lambda_starts.clear()
    deployment.builds.clear()
    messy = lifecycle(deployment, messy=True, report_first=not report_first)
    assert messy == in_order


def test_history_tells_the_lifecycle(deployment: Deployment) -> None:
    dep = deployment
    assert dep.api("POST", "/machines", {"spec": "preview-env", "id": "h-1"})[0] == 201
    assert dep.api("POST", "/machines/h-1/events", {"event": "LAUNCH"})[0] == 202
    dep.run_task_runner(dep.lambda_starts[0])
    for event in dep.dispatched(dep.published()):
        dep.deliver(event)
    for event in dep.dispatched(dep.published()):
        dep.deliver(event)
    status, page = dep.api("GET", "/machines/h-1/history", query={"limit": "3"})
    assert status == 200 and len(page["entries"]) == 3 and page["next_token"]
    status, rest = dep.api(
        "GET", "/machines/h-1/history", query={"limit": "1000", "next_token": page["next_token"]}
    )
    entries = page["entries"] + rest["entries"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    transitions = [(e["from_state"], e["to_state"]) for e in entries if e["kind"] == "transition"]
    assert transitions == [("INIT", "PROVISION"), ("PROVISION", "RUN")]


def test_a_failed_build_fails_the_task_and_a_late_report_changes_nothing(
    deployment: Deployment,
) -> None:
    dep = deployment
    dep.api("POST", "/machines", {"spec": "preview-env", "id": "f-1"})
    dep.api("POST", "/machines/f-1/events", {"event": "LAUNCH"})
    dep.run_task_runner(dep.lambda_starts[0])
    for _ in range(2):
        for event in dep.dispatched(dep.published()):
            dep.deliver(event)
    dep.deliver(eventbridge("my.app", "Machine Event", {"machine_id": "f-1", "event": "DESTROY"}))
    build = dep.builds[0]
    assert dep.deliver(build.state_change("IN_PROGRESS")) == "ignored"
    assert dep.deliver(build.state_change("TIMED_OUT")) == "applied"
    status, machine = dep.get("f-1")
    record = machine["tasks"]["db-teardown"]
    assert machine["status"] == "failed" and record["status"] == "failed"
    assert "TIMED_OUT" in record["error"] and build.build_id in record["error"]
    # The buildspec's report of the same attempt arrives late: a duplicate.
    assert dep.deliver(build.report("failed", error="terraform destroy failed")) == "duplicate"
    assert dep.get("f-1")[1]["version"] == machine["version"]
    # Retry starts a second attempt: a new build, and the old build's news is stale.
    status, machine = dep.api("POST", "/machines/f-1/retry")
    assert status == 202 and machine["tasks"]["db-teardown"]["attempt"] == 2
    assert len(dep.builds) == 2 and dep.builds[1].variables["STATEWRIGHT_ATTEMPT"] == "2"
    assert dep.deliver(build.state_change("SUCCEEDED")) == "stale"
    # The second build succeeds: its SUCCEEDED waits for its report, which completes it.
    assert dep.deliver(dep.builds[1].state_change("SUCCEEDED")) == "awaiting_report"
    assert dep.deliver(dep.builds[1].report("succeeded", {})) == "applied"
    assert dep.get("f-1")[0] == 404


def test_a_crashed_task_runner_fails_its_task(deployment: Deployment) -> None:
    dep = deployment
    dep.api("POST", "/machines", {"spec": "preview-env", "id": "c-1"})
    dep.api("POST", "/machines/c-1/events", {"event": "LAUNCH"})
    payload = json.loads(dep.lambda_starts[0].model_dump_json())
    failure = eventbridge(
        "lambda",
        "Lambda Function Invocation Result - Failure",
        {
            "version": "1.0",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "requestContext": {
                "requestId": "r-1",
                "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:"
                "statewright-test-taskrunner:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 1,
            },
            "requestPayload": payload,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {
                "errorType": "Runtime.ExitError",
                "errorMessage": "exited with 137",
            },
        },
    )
    assert dep.deliver(failure) == "applied"
    assert dep.deliver(failure) == "duplicate"
    _status, machine = dep.get("c-1")
    record = machine["tasks"]["db-setup"]
    assert machine["status"] == "failed" and record["status"] == "failed"
    assert record["error"] == (
        "the task runner failed (RetriesExhausted): Runtime.ExitError: exited with 137"
    )
    assert record["error_type"] == "Runtime.ExitError"
    # Another function's failure on the bus is not the task runner's: dropped.
    other = copy.deepcopy(failure)
    other["detail"]["requestContext"]["functionArn"] = "arn:aws:lambda:us-east-1:1:function:x"
    assert dep.deliver(other) == "ignored"


def test_bus_events_that_cannot_apply_are_dropped_without_raising(deployment: Deployment) -> None:
    dep = deployment
    dep.api("POST", "/machines", {"spec": "preview-env", "id": "r-1"})
    refused = [
        eventbridge("my.app", "Machine Event", {"machine_id": "nobody", "event": "LAUNCH"}),
        eventbridge("my.app", "Machine Event", {"machine_id": "r-1", "event": "EXPLODE"}),
        eventbridge("my.app", "Machine Event", {"machine_id": "r-1", "event": "DESTROY"}),
        eventbridge("my.app", "Machine Event", {"machine_id": "r-1", "event": "NEXT", "epoch": 1}),
        eventbridge(
            "my.app",
            "Task Finished",
            {"machine_id": "r-1", "epoch": 1, "task": "x", "attempt": 1, "status": "succeeded"},
        ),
        eventbridge("my.app", "Machine Event", {"machine_id": "r-1"}),
    ]
    assert [dep.deliver(e) for e in refused] == ["refused"] * len(refused)
    assert dep.deliver(eventbridge("my.app", "Something Else", {"a": 1})) == "ignored"
    assert dep.deliver({"hello": "world"}) == "ignored"
    status, machine = dep.get("r-1")
    assert status == 200 and machine["state"] == "INIT" and machine["version"] == 1


def test_a_machine_event_with_a_spec_creates_the_machine(deployment: Deployment) -> None:
    dep = deployment
    event = eventbridge(
        "my.app",
        "Machine Event",
        {"machine": "preview-env", "stackId": "new-1", "action": "LAUNCH", "metadata": {"pr": 7}},
    )
    assert dep.deliver(event) == "applied"
    status, machine = dep.get("new-1")
    assert status == 200 and machine["state"] == "PROVISION"
    assert machine["metadata"] == {"pr": 7}


def test_outcomes_transitions_and_failures_are_counted(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    dep = deployment
    dep.api("POST", "/machines", {"spec": "preview-env", "id": "m-1"})
    dep.api("POST", "/machines/m-1/events", {"event": "LAUNCH"})
    failure = {"machine_id": "m-1", "epoch": 2, "task": "db-setup", "attempt": 1}
    event = dep.task_finished({**failure, "status": "failed", "error": "x"})
    assert dep.deliver(event) == "applied"
    assert dep.deliver(event) == "duplicate"
    old = dep.task_finished({**failure, "epoch": 1, "status": "failed"})
    assert dep.deliver(old) == "stale"
    dep.deliver(eventbridge("my.app", "Machine Event", {"machine_id": "m-1", "event": "NOPE"}))
    totals = emitted(capsys.readouterr().out)
    assert totals["transitions"] == 1 and totals["task_failures"] == 1
    assert totals["events_applied"] == 1 and totals["events_duplicate"] == 1
    assert totals["events_stale"] == 1 and totals["events_refused"] == 1


def test_a_machine_that_cannot_be_read_leaves_listings_and_the_reconciler_working(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """One damaged item (a bad migration, a hand edit) is left out of GET /machines,
    logged with its id and counted; every other machine is listed, and a reconciler run
    ends without an error (it reads only machines with work due: none here)."""
    dep = deployment
    for machine_id in ("u-1", "u-2", "u-3"):
        dep.api("POST", "/machines", {"spec": "preview-env", "id": machine_id})
    store = DynamoStore(boto3.client("dynamodb", region_name=REGION), TABLE)
    break_dynamodb_machine(store, "u-2")
    capsys.readouterr()
    status, body = dep.api("GET", "/machines")
    assert status == 200, body
    assert sorted(m["id"] for m in body["machines"]) == ["u-1", "u-3"]
    assert emitted(capsys.readouterr().out)["machines_unreadable"] == 1
    report: Any = dep.reconciler.handler({}, lambda_context("reconciler"))
    assert report["recovery"]["machines_scanned"] == 0 and report["errors"] == []
