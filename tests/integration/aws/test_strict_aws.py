"""tests.aws_limits: under the moto fixtures, what AWS refuses is refused, the way AWS
refuses it (error code and message), where moto alone would let it through."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests import aws_limits
from tests.integration.aws.deployment import REGION, create_control_plane_resources


@pytest.fixture
def plane(aws: None) -> None:
    create_control_plane_resources()


def code_of(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_a_synchronous_invoke_takes_at_most_6_mb(plane: None) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    assert lam.invoke(FunctionName="db-setup", Payload=b'"' + b"x" * 1_000_000 + b'"')
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName="db-setup", Payload=b"x" * (aws_limits.LAMBDA_SYNC_BYTES + 1))
    assert code_of(refused) == "RequestEntityTooLargeException"
    assert "6291456 bytes" in str(refused.value)


def test_an_asynchronous_invoke_takes_at_most_1_mb(plane: None) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    fits = json.dumps({"blob": "x" * (aws_limits.LAMBDA_ASYNC_BYTES - 20)}).encode()
    assert lam.invoke(FunctionName="db-setup", InvocationType="Event", Payload=fits)
    too_big = json.dumps({"blob": "x" * aws_limits.LAMBDA_ASYNC_BYTES}).encode()
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName="db-setup", InvocationType="Event", Payload=too_big)
    assert code_of(refused) == "RequestEntityTooLargeException"
    assert "too large for the Event invocation type" in str(refused.value)


def test_a_synchronous_answer_over_6_mb_is_the_functions_error(aws: None) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    huge = b'"' + b"x" * aws_limits.LAMBDA_SYNC_BYTES + b'"'
    stub = Stubber(lam)
    stub.add_response(
        "invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(huge), len(huge))}
    )
    with stub:
        answer = lam.invoke(FunctionName="db-setup", Payload=b"{}")
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"


def test_put_events_takes_at_most_1_mb_of_entries(aws: None) -> None:
    events = boto3.client("events", region_name=REGION)
    entry = {"Source": "statewright", "DetailType": "Task Finished"}
    big = {**entry, "Detail": json.dumps({"blob": "x" * 600_000})}
    assert events.put_events(Entries=[big])["FailedEntryCount"] == 0  # over 256 KB: fine now
    with pytest.raises(ClientError) as refused:
        events.put_events(Entries=[big, big])
    assert code_of(refused) == "ValidationException"
    assert "over the limit" in str(refused.value)


def test_a_schedule_name_has_at_most_64_characters(aws: None) -> None:
    scheduler = boto3.client("scheduler", region_name=REGION)
    target = {
        "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/statewright-test",
        "RoleArn": "arn:aws:iam::123456789012:role/statewright-test",
    }
    kwargs: dict[str, Any] = {
        "ScheduleExpression": "rate(5 minutes)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": target,
    }
    scheduler.create_schedule(Name="n" * 64, **kwargs)
    with pytest.raises(ClientError) as refused:
        scheduler.create_schedule(Name="n" * 65, **kwargs)
    assert code_of(refused) == "ValidationException"
    assert "less than or equal to 64" in str(refused.value)


def test_a_schedule_name_and_a_one_time_expression_follow_scheduler_s_rules(
    aws: None,
) -> None:
    scheduler = boto3.client("scheduler", region_name=REGION)
    target = {
        "Arn": "arn:aws:lambda:us-east-1:123456789012:function:statewright-test-dispatcher",
        "RoleArn": "arn:aws:iam::123456789012:role/statewright-test",
    }
    kwargs: dict[str, Any] = {"FlexibleTimeWindow": {"Mode": "OFF"}, "Target": target}
    scheduler.create_schedule(
        Name="a-B_c.1", ScheduleExpression="at(2026-02-28T23:59:00)", **kwargs
    )
    for name, expression in (
        ("has:colon", "at(2026-02-28T23:59:00)"),
        ("fraction", "at(2026-02-28T23:59:00.500)"),
        ("zone", "at(2026-02-28T23:59:00Z)"),
        ("no-such-day", "at(2026-02-30T12:00:00)"),
        ("date-only", "at(2026-02-28)"),
    ):
        with pytest.raises(ClientError) as refused:
            scheduler.create_schedule(Name=name, ScheduleExpression=expression, **kwargs)
        assert code_of(refused) == "ValidationException", name


def test_api_gateway_answers_504_after_29_seconds_and_413_over_10_mb() -> None:
    now = [0.0]

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        now[0] += 30.0
        return {"statusCode": 200, "body": "{}"}

    answer = aws_limits.api_gateway_answer(slow, {"body": "{}"}, None, clock=lambda: now[0])
    assert answer["statusCode"] == 504
    assert json.loads(answer["body"]) == {"message": "Endpoint request timed out"}
    huge = {"body": "x" * (aws_limits.API_GATEWAY_PAYLOAD_BYTES + 1)}
    assert aws_limits.api_gateway_answer(slow, huge, None)["statusCode"] == 413
