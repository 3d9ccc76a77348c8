"""A third environment, declared only in context, shows each cdk.json setting reaching
the template (and cdk-nag accepting operator-chosen policies with their reasons)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import assertions

from infra.app import build_app, repository_context
from infra.settings import CONTEXT_KEY, SettingsError
from tests.infra.conftest import acknowledged_rules
from tests.infra.test_stack import kept_with_a_fixed_name

STAGING = {
    "account": "111122223333",
    "region": "eu-west-1",
    "task_function_prefix": "acme-staging-",
    "terraform": {
        "distribution": "opentofu",
        "version": "1.10.6",
        # Made up: a synth downloads nothing (the build checks it against the zip).
        "sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "compute_type": "LARGE",
    },
    "terraform_managed_policy_arns": ["arn:aws:iam::aws:policy/AmazonSQSFullAccess"],
    "terraform_policy_statements": [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:CreateTable", "dynamodb:Describe*"],
            "Resource": ["arn:aws:dynamodb:eu-west-1:111122223333:table/acme-*"],
        }
    ],
    "terraform_module_buckets": ["acme-terraform-modules"],
    "log_retention_days": 90,
    "api_throttling": {"rate_limit": 7, "burst_limit": 9},
    "api_detailed_metrics": True,
    "api_execution_logs": "errors",
    "api_gateway_account_role": True,
    "removal_policy": "retain",
    "history_retention_days": 12,
    "notices": {"state_changed": False},
    "reconcile_every_minutes": 2,
    "alarm_email": "oncall@example.com",
    "access": [
        {
            "principals": ["arn:aws:iam::111122223333:role/ci"],
            "actions": ["create", "send", "read"],
            "specs": ["preview-env"],
            "events": ["LAUNCH", "DESTROY"],
            "machines": ["pr-*"],
        },
        {"principals": ["arn:aws:iam::111122223333:role/platform"]},
    ],
    "bus_senders": {"sources": ["acme.billing", "acme.ci.*"], "accounts": ["444455556666"]},
}


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    context = json.loads(json.dumps(repository_context()))
    context[CONTEXT_KEY]["staging"] = STAGING
    outdir = tmp_path_factory.mktemp("cdk-staging")
    build_app("staging", outdir=str(outdir), context=context).synth()
    yield json.loads((outdir / "statewright-staging.template.json").read_text()), outdir


def test_account_and_region_pin_the_stack(staging: tuple[dict[str, Any], Path]) -> None:
    _, outdir = staging
    manifest = json.loads((outdir / "manifest.json").read_text())
    artifact = manifest["artifacts"]["statewright-staging"]
    assert artifact["environment"] == "aws://111122223333/eu-west-1"
    assert artifact["properties"]["terminationProtection"] is True


def test_settings_reach_the_template(staging: tuple[dict[str, Any], Path]) -> None:
    raw, _ = staging
    template = assertions.Template.from_json(raw)
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": [
                assertions.Match.object_like({"ThrottlingRateLimit": 7, "ThrottlingBurstLimit": 9})
            ]
        },
    )
    template.has_resource_properties(
        "AWS::CodeBuild::Project",
        {"Environment": assertions.Match.object_like({"ComputeType": "BUILD_GENERAL1_LARGE"})},
    )
    template.has_resource_properties(
        "AWS::CodeBuild::Project",
        {
            "Environment": assertions.Match.object_like(
                {
                    "EnvironmentVariables": assertions.Match.array_with(
                        [
                            {"Name": "TF_DISTRIBUTION", "Type": "PLAINTEXT", "Value": "opentofu"},
                            {"Name": "TF_VERSION", "Type": "PLAINTEXT", "Value": "1.10.6"},
                        ]
                    )
                }
            )
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Role",
        {"ManagedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSQSFullAccess"]},
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["dynamodb:CreateTable", "dynamodb:Describe*"],
                        "Resource": "arn:aws:dynamodb:eu-west-1:111122223333:table/acme-*",
                    }
                ],
                "Version": "2012-10-17",
            }
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": assertions.Match.array_with(
                    [
                        assertions.Match.object_like(
                            {
                                "Action": "lambda:InvokeFunction",
                                "Resource": {
                                    "Fn::Join": [
                                        "",
                                        [
                                            "arn:",
                                            {"Ref": "AWS::Partition"},
                                            ":lambda:eu-west-1:111122223333"
                                            ":function:acme-staging-*",
                                        ],
                                    ]
                                },
                            }
                        )
                    ]
                )
            }
        },
    )
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(2 minutes)"})
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )
    for group in template.find_resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 90
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": "statewright-staging-dispatcher",
            "Environment": {
                "Variables": assertions.Match.object_like(
                    {
                        "STATEWRIGHT_HISTORY_RETENTION_DAYS": "12",
                        "STATEWRIGHT_STATE_CHANGED_NOTICES": "false",
                    }
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": "statewright-staging-reconciler",
            "Environment": {
                "Variables": assertions.Match.object_like(
                    {"STATEWRIGHT_STATE_CHANGED_NOTICES": "false"}
                )
            },
        },
    )


def test_operator_policies_are_acknowledged_with_reasons(
    staging: tuple[dict[str, Any], Path],
) -> None:
    _, outdir = staging
    acknowledged = set(acknowledged_rules(outdir / "statewright-staging.metadata.json"))
    assert {
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:aws:iam::aws:policy/AmazonSQSFullAccess]",
        "AwsSolutions::AwsSolutions-IAM5[Action::dynamodb:Describe*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:dynamodb:eu-west-1:111122223333:table/acme-*]",
    } <= acknowledged


def test_opt_in_api_gateway_logs_metrics_and_account_role(
    staging: tuple[dict[str, Any], Path],
) -> None:
    raw, _ = staging
    template = assertions.Template.from_json(raw)
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": [
                assertions.Match.object_like({"LoggingLevel": "ERROR", "MetricsEnabled": True})
            ]
        },
    )
    # The account-wide setting, only where asked for, with its role kept on delete.
    (account,) = template.find_resources("AWS::ApiGateway::Account").values()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert raw["Resources"][role_id]["DeletionPolicy"] == "Retain"
    # Execution logs go to API-Gateway-Execution-Logs_<api id>/<stage>; the stack creates
    # that group first, so it expires like the others instead of growing forever.
    api_id = next(iter(template.find_resources("AWS::ApiGateway::RestApi")))
    groups = template.find_resources(
        "AWS::Logs::LogGroup",
        {
            "Properties": {
                "LogGroupName": {
                    "Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api_id}, "/v1"]]
                }
            }
        },
    )
    ((group_id, group),) = groups.items()
    # Named after the API's id, which is new with every create: kept, it blocks nothing.
    assert kept_with_a_fixed_name(raw) == []
    assert group["Properties"]["RetentionInDays"] == 90
    assert group["DeletionPolicy"] == "RetainExceptOnCreate"
    (stage,) = template.find_resources("AWS::ApiGateway::Stage").values()
    assert group_id in stage["DependsOn"]


def test_module_buckets_are_readable_by_the_terraform_runner(
    staging: tuple[dict[str, Any], Path],
) -> None:
    raw, _ = staging
    statements = [
        statement
        for resource in raw["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {s.get("Sid"): s for s in statements}
    bucket = ["arn:", {"Ref": "AWS::Partition"}, ":s3:::acme-terraform-modules"]
    assert by_sid["ListModuleBuckets"]["Action"] == "s3:ListBucket"
    assert by_sid["ListModuleBuckets"]["Resource"] == {"Fn::Join": ["", bucket]}
    assert by_sid["ReadModuleBuckets"]["Action"] == "s3:GetObject"
    assert by_sid["ReadModuleBuckets"]["Resource"] == {
        "Fn::Join": ["", [*bucket[:2], ":s3:::acme-terraform-modules/*"]]
    }


def test_access_rules_reach_the_dispatcher_as_json(staging: tuple[dict[str, Any], Path]) -> None:
    raw, _ = staging
    variables = {
        r["Properties"]["FunctionName"]: r["Properties"].get("Environment", {}).get("Variables", {})
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]
    }
    rules = json.loads(variables.pop("statewright-staging-dispatcher")["STATEWRIGHT_ACCESS"])
    assert rules == STAGING["access"]
    # only the dispatcher answers the API
    assert variables and not any("STATEWRIGHT_ACCESS" in v for v in variables.values())


def test_bus_takes_only_the_listed_sources_and_accounts(
    staging: tuple[dict[str, Any], Path],
) -> None:
    raw, _ = staging
    statements = {
        r["Properties"]["StatementId"].removeprefix("cdk-"): r["Properties"]["Statement"]
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::Events::EventBusPolicy"
    }
    deny = statements["OnlyListedSourcesSendEvents"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "events:PutEvents"
    assert deny["Principal"] == {"AWS": "*"}
    assert deny["Condition"]["StringNotLike"] == {"events:source": ["acme.billing", "acme.ci.*"]}
    # the control plane's four roles are exempt (their statewright and Lambda events)
    assert len(deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == 4
    allow = statements["ListedAccountsSendListedSources"]
    assert allow["Effect"] == "Allow"
    assert allow["Condition"] == {"StringLike": {"events:source": ["acme.billing", "acme.ci.*"]}}
    assert "444455556666" in json.dumps(allow["Principal"])


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            [{"specs": ["preview-env"]}, {"specs": ["tenants"]}],
            r"access\[1\]\.specs: no spec named 'tenants'",
        ),
        (
            [{"specs": ["preview-env"], "events": ["OFFBOARD"]}],
            r"access\[0\]\.events: 'OFFBOARD' is not an event of spec preview-env",
        ),
        ([{"actions": ["destroy"]}], r"access\.0\.actions\.0: "),
        (
            [{"principals": [f"arn:aws:iam::111122223333:role/r{i:04}"]} for i in range(80)],
            r"the access rules take \d+ bytes as JSON",
        ),
    ],
)
def test_access_rules_that_do_not_fit_fail_the_synth(access: Any, message: str) -> None:
    context = json.loads(json.dumps(repository_context()))
    context[CONTEXT_KEY]["staging"] = {**STAGING, "access": access}
    with pytest.raises(SettingsError, match=message):
        build_app("staging", context=context)
