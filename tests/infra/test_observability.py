"""Alarms on function errors and throttles, DLQ depth and API 5xx, to an encrypted
topic; one dashboard."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import Synthesized, own_arn


def _alarms(synth: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()]


def test_every_function_alarms_on_errors_and_throttles(synth: Synthesized) -> None:
    functions = {
        k: r["Properties"]["FunctionName"]
        for k, r in synth.of_type("AWS::Lambda::Function").items()
    }
    assert len(functions) == 3
    watched = {
        (alarm["MetricName"], dim["Value"]["Ref"])
        for alarm in _alarms(synth)
        if alarm.get("Namespace") == "AWS/Lambda"
        for dim in alarm["Dimensions"]
    }
    for logical_id in functions:
        assert ("Errors", logical_id) in watched
        assert ("Throttles", logical_id) in watched


def test_every_dead_letter_queue_alarms_on_depth(synth: Synthesized) -> None:
    queues = set(synth.of_type("AWS::SQS::Queue"))
    watched = {
        dim["Value"]["Fn::GetAtt"][0]
        for alarm in _alarms(synth)
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        for dim in alarm["Dimensions"]
    }
    assert watched == queues


def test_alarms_notify_an_encrypted_topic_and_the_api_5xx_is_watched(synth: Synthesized) -> None:
    topic_id, topic = synth.one("AWS::SNS::Topic")
    key_id, key = synth.one("AWS::KMS::Key")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    assert "cloudwatch.amazonaws.com" in json.dumps(key["Properties"]["KeyPolicy"])
    alarms = _alarms(synth)
    assert any(a.get("MetricName") == "5XXError" for a in alarms)
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Threshold"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"


def test_dashboard_shows_the_control_plane(synth: Synthesized) -> None:
    _, dashboard = synth.one("AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == f"statewright-{synth.env}"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in ("AWS/Lambda", "AWS/ApiGateway", "AWS/SQS", "AWS/DynamoDB", "AWS/CodeBuild"):
        assert needle in body, needle
    assert "SEARCH(" in body and "Statewright" in body


def test_cloudwatch_may_publish_to_the_alarm_topic_for_this_account_only(
    synth: Synthesized,
) -> None:
    # The topic has a policy of its own (TLS only), which replaces SNS's default one:
    # unless it allows CloudWatch, no alarm reaches a subscriber.
    topic_id, _ = synth.one("AWS::SNS::Topic")
    _, policy = synth.one("AWS::SNS::TopicPolicy")
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    assert allowed == [
        {
            "Sid": "CloudWatchAlarmsOfThisAccount",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Resource": {"Ref": topic_id},
            "Condition": {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnLike": {"aws:SourceArn": own_arn("cloudwatch", "alarm:*")},
            },
        }
    ]
    # Publishing without TLS stays refused to everyone.
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    # The topic's key lets CloudWatch encrypt for this account's alarms only.
    _, key = synth.one("AWS::KMS::Key")
    (for_cloudwatch,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert for_cloudwatch["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }
