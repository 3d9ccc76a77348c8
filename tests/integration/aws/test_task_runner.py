"""The task runner: the user's function invoked synchronously with the event of
docs/architecture.md#task-executors, its result or its error reported as ``Task Finished``. Lambda's
answers that moto cannot give (a function error, a missing function) come from botocore's Stubber on
a real client, which checks each request against the Lambda API model."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from statewright.aws.task_runner import TaskRunner
from statewright.limits import TASK_OUTPUT_MAX_BYTES
from statewright.model import TaskInvocation

from tests import fakes
from tests.fakes import RecordingBus

# The attempt's report token, as the dispatcher's service signed it into the payload.
TOKEN = "5e" * 32


def invocation(**changes: Any) -> TaskInvocation:
    fields: dict[str, Any] = {
        "machine_id": "pr-1",
        "spec": "preview-env",
        "spec_digest": "sha256:x",
        "task": "db-setup",
        "epoch": 2,
        "metadata": {"branch": "b"},
        "outputs": {"earlier": {"x": 1}},
        "timeout_seconds": 900,
        "report_token": TOKEN,
        **changes,
    }
    return fakes.invocation("lambda", {"name": "db-setup", "args": {"size": "s"}}, **fields)


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


@pytest.fixture
def lam() -> Any:
    return boto3.client(
        "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def run(lam: Any, inv: TaskInvocation, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    bus = RecordingBus()
    payload = json.loads(inv.model_dump_json())
    TaskRunner(lambda_client=lam, bus=bus, **kwargs).run(payload)
    [event] = bus.events
    assert (event.source, event.detail_type) == ("statewright", "Task Finished")
    return event.detail, bus


def test_the_function_gets_the_documented_event_and_its_result_is_the_output(lam: Any) -> None:
    stub = Stubber(lam)
    expected_event = {
        "machine_id": "pr-1",
        "spec": "preview-env",
        "state": "PROVISION",
        "task": "db-setup",
        "epoch": 2,
        "attempt": 1,
        "metadata": {"branch": "b"},
        "outputs": {"earlier": {"x": 1}},
        "args": {"size": "s"},
    }
    sent: list[dict[str, Any]] = []
    lam.meta.events.register(
        "provide-client-params.lambda.Invoke", lambda params, **_: sent.append(dict(params))
    )
    stub.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": body(b'{"url": "https://pr-1"}')},
        {"FunctionName": "db-setup", "InvocationType": "RequestResponse", "Payload": ANY},
    )
    with stub:
        detail, _ = run(lam, invocation())
    assert json.loads(sent[0]["Payload"]) == expected_event  # no report token for the function
    assert detail == {
        "machine_id": "pr-1",
        "epoch": 2,
        "task": "db-setup",
        "attempt": 1,
        "status": "succeeded",
        "output": {"url": "https://pr-1"},
        "error": None,
        "error_type": None,
        "redacted_outputs": [],
        "report_token": TOKEN,  # the report proves it is this attempt's
    }


def test_a_function_error_fails_the_task_with_its_type_and_message(lam: Any) -> None:
    stub = Stubber(lam)
    error = {"errorType": "KeyError", "errorMessage": "'DATABASE_URL'", "stackTrace": ["..."]}
    stub.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": body(json.dumps(error).encode()),
        },
    )
    with stub:
        detail, _ = run(lam, invocation())
    assert detail["status"] == "failed" and detail["error"] == "KeyError: 'DATABASE_URL'"
    assert detail["error_type"] == "KeyError"
    assert detail["report_token"] == TOKEN


def test_a_function_that_cannot_be_invoked_fails_the_task(lam: Any) -> None:
    stub = Stubber(lam)
    stub.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found: db-setup",
    )
    with stub:
        detail, _ = run(lam, invocation())
    assert detail["status"] == "failed"
    assert detail["error"] == (
        "could not invoke db-setup: ResourceNotFoundException: Function not found: db-setup"
    )
    assert detail["error_type"] == "ResourceNotFoundException"
    assert detail["report_token"] == TOKEN


def test_an_output_too_big_for_the_bus_fails_the_task_with_a_reason(lam: Any) -> None:
    stub = Stubber(lam)
    big = json.dumps({"blob": "x" * TASK_OUTPUT_MAX_BYTES}).encode()
    stub.add_response("invoke", {"StatusCode": 200, "Payload": body(big)})
    with stub:
        detail, _ = run(lam, invocation())
    assert detail["status"] == "failed" and detail["output"] is None
    assert "return less" in detail["error"] and str(TASK_OUTPUT_MAX_BYTES) in detail["error"]
    assert detail["error_type"] == "OutputTooLarge"
    assert detail["report_token"] == TOKEN


def test_a_retried_attempt_runs_at_once(lam: Any) -> None:
    """Its backoff was waited for by a timer before it was queued: the runner never
    sleeps (an invocation from an older dispatcher that still says how long to wait is
    run at once too)."""
    stub = Stubber(lam)
    stub.add_response("invoke", {"StatusCode": 200, "Payload": body(b"null")})
    payload = {**json.loads(invocation(attempt=2).model_dump_json()), "delay_seconds": 600}
    bus = RecordingBus()
    with stub:
        detail = TaskRunner(lambda_client=lam, bus=bus).run(payload)
    assert detail.status == "succeeded" and detail.attempt == 2
    assert [e.detail_type for e in bus.events] == ["Task Finished"]
