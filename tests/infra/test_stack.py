"""The stack as a whole: name, environment-agnostic synthesis, outputs, cfn-lint, cdk-nag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs

from infra.nag import acknowledge, enable_nag
from infra.paths import REPO_ROOT
from tests.infra.conftest import Synthesized, acknowledged_rules, cfn_lint_findings


def test_one_stack_named_after_the_environment(synth: Synthesized) -> None:
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    stacks = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert list(stacks) == [f"statewright-{synth.env}"]
    artifact = stacks[f"statewright-{synth.env}"]
    assert artifact["properties"]["templateFile"] == synth.template_path.name
    # No account/region in cdk.json: deployable wherever the credentials point, and no
    # lookups were needed to synthesize.
    assert artifact["environment"] == "aws://unknown-account/unknown-region"
    assert artifact["properties"]["terminationProtection"] is synth.settings.retain
    assert not (REPO_ROOT / "cdk.context.json").exists()


def test_outputs_name_the_endpoint_and_the_resources(synth: Synthesized) -> None:
    outputs = synth.raw["Outputs"]
    assert set(outputs) == {
        "ApiEndpoint",
        "AlarmTopicArn",
        "BusName",
        "TableName",
        "StateBucketName",
        "TerraformProjectName",
        "ScheduleGroupName",
    }
    api_id, _ = synth.one("AWS::ApiGateway::RestApi")
    endpoint = json.dumps(outputs["ApiEndpoint"]["Value"])
    assert api_id in endpoint and ".execute-api." in endpoint
    assert outputs["BusName"]["Value"] == f"statewright-{synth.env}"


# The property that fixes a resource's physical name, for the types CloudFormation may keep.
NAME_PROPERTIES = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
}
KEPT = {"Retain", "RetainExceptOnCreate", "Snapshot"}


def kept_with_a_fixed_name(template: dict[str, Any]) -> list[str]:
    """Resources CloudFormation keeps on delete (or replacement) whose name is a constant:
    the next create of the stack would fail on them with "already exists". A name built
    from another resource of the stack (an API's id) is new with every create."""
    found = []
    for logical_id, resource in template["Resources"].items():
        kept = {resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")} & KEPT
        name = resource.get("Properties", {}).get(NAME_PROPERTIES.get(resource["Type"], ""))
        if kept and isinstance(name, str):
            found.append(f"{logical_id} ({name})")
    return found


def test_a_redeploy_after_a_delete_or_a_failed_create_finds_no_leftover_names(
    synth: Synthesized,
) -> None:
    assert kept_with_a_fixed_name(synth.raw) == []
    # And a create that fails and rolls back leaves no log group behind at all.
    for logical_id, group in synth.of_type("AWS::Logs::LogGroup").items():
        expected = "RetainExceptOnCreate" if synth.settings.retain else "Delete"
        assert group["DeletionPolicy"] == expected, logical_id


def test_cfn_lint_is_clean(synth: Synthesized) -> None:
    assert cfn_lint_findings(synth.template_path) == ""


def test_every_acknowledgment_has_a_reason(synth: Synthesized) -> None:
    # The synth passed the AwsSolutions plugin; what it accepted is recorded in the
    # construct metadata, one written reason per finding id.
    acknowledged = acknowledged_rules(synth.outdir / f"statewright-{synth.env}.metadata.json")
    assert {
        "AwsSolutions::AwsSolutions-APIG3",
        "AwsSolutions::AwsSolutions-COG4",
        "AwsSolutions::AwsSolutions-L1",
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
    } <= set(acknowledged)
    for rule_id, reason in acknowledged.items():
        assert rule_id.startswith("AwsSolutions::AwsSolutions-"), rule_id
        assert len(reason) >= 60, (rule_id, reason)


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    enable_nag(app)
    stack = cdk.Stack(app, "probe")
    sqs.Queue(stack, "PlainQueue")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_an_acknowledgment_needs_a_reason(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    queue = sqs.Queue(cdk.Stack(app, "probe"), "Queue")
    with pytest.raises(ValueError, match="real reason"):
        acknowledge(queue, "AwsSolutions-SQS3", "because")
