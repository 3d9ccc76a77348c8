"""The bus, its rules and their dead-letter queues — and where real events go: the
synthesized rules are installed in moto's EventBridge (targets replaced by SQS queues)
and fed the events of docs/aws.md#event-flows, including forged internal ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.infra.conftest import Synthesized

REGION = "us-east-1"
ACCOUNT = "123456789012"


def test_bus_is_named_after_the_environment(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::Events::EventBus", {"Name": f"statewright-{synth.env}"}
    )


def test_every_rule_target_has_an_encrypted_tls_only_dead_letter_queue(
    synth: Synthesized,
) -> None:
    rules = synth.of_type("AWS::Events::Rule")
    assert len(rules) == 5  # four routes to the dispatcher, one schedule
    queues = synth.of_type("AWS::SQS::Queue")
    for rule_id, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            queue_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
            assert queue_id in queues, rule_id
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, queue_id
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    policies = synth.of_type("AWS::SQS::QueuePolicy").values()
    secured = {
        q["Ref"]
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for q in policy["Properties"]["Queues"]
    }
    assert secured == set(queues)


def test_codebuild_rule_listens_on_the_default_bus(synth: Synthesized) -> None:
    project_id, _ = synth.one("AWS::CodeBuild::Project")
    _, rule = synth.one("AWS::Events::Rule", "RoutingTerraformBuildEnded")
    assert "EventBusName" not in rule["Properties"]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.codebuild"]
    assert pattern["detail"]["project-name"] == [{"Ref": project_id}]


def _resolve(value: Any, names: dict[str, str]) -> Any:
    """CloudFormation references in a rule pattern, replaced by deployed names/ARNs."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return names[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            return names[value["Fn::GetAtt"][0]]
        return {k: _resolve(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, names) for v in value]
    return value


class Routing:
    def __init__(self, synth: Synthesized) -> None:
        self.env = synth.env
        self.bus = f"statewright-{synth.env}"
        self.runner_arn = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:statewright-{synth.env}-taskrunner"
        )
        self.project = f"statewright-{synth.env}-terraform"
        runner_id, _ = synth.one("AWS::Lambda::Function", "TasksRunner")
        project_id, _ = synth.one("AWS::CodeBuild::Project")
        names = {runner_id: self.runner_arn, project_id: self.project}
        self.events = boto3.client("events", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events.create_event_bus(Name=self.bus)
        self.queues: dict[str, str] = {}
        for rule_id, rule in synth.of_type("AWS::Events::Rule").items():
            props = rule["Properties"]
            if "EventPattern" not in props:
                continue
            bus = self.bus if "EventBusName" in props else "default"
            name = rule_id[:-8]  # without CDK's hash suffix
            self.events.put_rule(
                Name=name,
                EventBusName=bus,
                EventPattern=json.dumps(_resolve(props["EventPattern"], names)),
            )
            url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self.events.put_targets(
                Rule=name,
                EventBusName=bus,
                Targets=[{"Id": "capture", "Arn": arn["Attributes"]["QueueArn"]}],
            )
            self.queues[name] = url

    def route(
        self, source: str, detail_type: str, detail: dict[str, Any], *, bus: str = ""
    ) -> set[str]:
        """The rules (by construct name) that matched one event."""
        self.events.put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": bus or self.bus,
                }
            ]
        )
        matched = set()
        for name, url in self.queues.items():
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            for message in messages.get("Messages", []):
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                matched.add(name.removeprefix("Routing"))
        return matched


@pytest.fixture
def routing(synth: Synthesized, monkeypatch: pytest.MonkeyPatch) -> Iterator[Routing]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield Routing(synth)


def test_internal_events_reach_the_dispatcher_only_from_the_control_plane(
    routing: Routing,
) -> None:
    next_event = {"machine_id": "m1", "event": "NEXT", "epoch": 2}
    finished = {"machine_id": "m1", "epoch": 2, "task": "db", "attempt": 1, "status": "succeeded"}
    assert routing.route("statewright", "Machine Event", next_event) == {"InternalEvents"}
    assert routing.route("statewright", "Task Finished", finished) == {"InternalEvents"}
    # Forged from any other source: dropped before the dispatcher.
    assert routing.route("my.app", "Machine Event", next_event) == set()
    assert routing.route("my.app", "Machine Event", {**next_event, "event": "FAILED"}) == set()
    assert routing.route("my.app", "Task Finished", finished) == set()


def test_users_and_cloudseam_messages_reach_the_dispatcher(routing: Routing) -> None:
    assert routing.route(
        "my.scheduler", "Machine Event", {"machine_id": "m1", "event": "DESTROY"}
    ) == {"ExternalEvents"}
    cloudseam = {"stackId": "m2", "machine": "preview-env", "action": "LAUNCH"}
    assert routing.route("cloudseam", "Machine Event", cloudseam) == {"ExternalEvents"}
    assert routing.route("cloudseam", "Machine Event", {**cloudseam, "action": "NEXT"}) == set()
    assert routing.route("my.app", "Something Else", {"machine_id": "m1", "event": "X"}) == set()


def test_task_runner_crashes_reach_the_dispatcher(routing: Routing) -> None:
    failure = {
        "version": "1.0",
        "requestContext": {
            "requestId": "r1",
            "functionArn": f"{routing.runner_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"machine_id": "m1", "task": "db", "epoch": 2, "attempt": 1},
        "responsePayload": {"errorType": "Runtime.ExitError", "errorMessage": "crashed"},
    }
    kind = "Lambda Function Invocation Result - Failure"
    assert routing.route("lambda", kind, failure) == {"TaskRunnerFailures"}
    other = json.loads(json.dumps(failure))
    other["requestContext"]["functionArn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:x:$LATEST"
    assert routing.route("lambda", kind, other) == set()


def test_ended_builds_of_our_project_reach_the_dispatcher(routing: Routing) -> None:
    def build(project: str, status: str) -> dict[str, Any]:
        return {"project-name": project, "build-status": status, "build-id": "b:1"}

    kind = "CodeBuild Build State Change"
    for status in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert routing.route(
            "aws.codebuild", kind, build(routing.project, status), bus="default"
        ) == {"TerraformBuildEnded"}
    assert (
        routing.route("aws.codebuild", kind, build(routing.project, "IN_PROGRESS"), bus="default")
        == set()
    )
    assert (
        routing.route("aws.codebuild", kind, build("someone-else", "SUCCEEDED"), bus="default")
        == set()
    )
