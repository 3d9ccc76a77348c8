"""What every Statewright Lambda function shares: arm64, Python 3.13, the runtime layer,
its own role (nothing but what its construct grants), its own log group, X-Ray."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.bundling import FunctionBundler, as_local_bundling
from infra.layer import ARCHITECTURE, RUNTIME
from infra.nag import acknowledge
from infra.settings import LOG_RETENTION_DAYS, EnvironmentSettings, function_name

METRICS_NAMESPACE = "Statewright"
_RETENTION = (
    "ONE_DAY", "THREE_DAYS", "FIVE_DAYS", "ONE_WEEK", "TWO_WEEKS", "ONE_MONTH", "TWO_MONTHS",
    "THREE_MONTHS", "FOUR_MONTHS", "FIVE_MONTHS", "SIX_MONTHS", "ONE_YEAR", "THIRTEEN_MONTHS",
    "EIGHTEEN_MONTHS", "TWO_YEARS", "THREE_YEARS", "FIVE_YEARS", "SIX_YEARS", "SEVEN_YEARS",
    "EIGHT_YEARS", "NINE_YEARS", "TEN_YEARS",
)  # fmt: skip


def log_retention(settings: EnvironmentSettings) -> logs.RetentionDays:
    """cdk.json's log_retention_days as CDK's enum (same order as LOG_RETENTION_DAYS)."""
    return logs.RetentionDays[_RETENTION[LOG_RETENTION_DAYS.index(settings.log_retention_days)]]


def removal_policy(settings: EnvironmentSettings) -> cdk.RemovalPolicy:
    return cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY


def log_group(scope: Construct, construct_id: str, settings: EnvironmentSettings) -> logs.LogGroup:
    """A log group of the control plane. Unnamed (CloudFormation names it after the
    stack), so a retained group never blocks the next create of the stack with "already
    exists"; and with ``retain``, kept on delete but not when the stack's own create
    fails and rolls back (RetainExceptOnCreate), so a failed first deploy leaves none."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=log_retention(settings),
        removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
        if settings.retain
        else cdk.RemovalPolicy.DESTROY,
    )


class StatewrightFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        name: str,
        source: Path,
        layer: lambda_.ILayerVersion,
        environment: Mapping[str, str],
        timeout: cdk.Duration,
        memory_mb: int,
        description: str,
        extras: Mapping[str, Path] | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function_name = function_name(env_name, name)
        bundler = FunctionBundler(source, extras)
        bundler.check()
        # The function logs here (its LoggingConfig), not to /aws/lambda/<name>.
        self.log_group = log_group(self, "Logs", settings)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Statewright {env_name} {name}: only what this function does",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(source),
                # Output hash: the bundle holds more than the source dir (specs/ for the
                # dispatcher), and a spec change must reach AWS.
                asset_hash_type=cdk.AssetHashType.OUTPUT,
                bundling=cdk.BundlingOptions(
                    image=RUNTIME.bundling_image, local=as_local_bundling(bundler)
                ),
            ),
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letter_queue,
            timeout=timeout,
            memory_size=memory_mb,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": f"statewright-{name}",
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        # CDK makes the function depend on its role and the role's policy; the role's ARN
        # in the function already orders the first, and cfn-lint (W3005) flags it. The
        # policy must stay: the function is not usable before its permissions exist.
        function_resource = self.function.node.default_child
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(function_resource, cdk.CfnResource)
        assert isinstance(policy, cdk.CfnResource)
        function_resource.add_override("DependsOn", [policy.logical_id])
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords (added by active tracing) "
            "support no resource-level permissions; every other statement names its "
            "resources.",
        )
        latest = lambda_.Runtime.PYTHON_3_14.name
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"Python 3.13 is deliberate: the layer's compiled wheels (pydantic-core, PyYAML) "
            f"are fetched for cp313/manylinux2014_aarch64; moving to {latest} means "
            "rebuilding the layer for it, done together, not by a linter.",
        )
