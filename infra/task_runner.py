"""The task runner: invokes a task's Lambda function synchronously and reports
``Task Finished`` to the bus. If it crashes itself, Lambda's on-failure destination
delivers the failed invocation to the bus, where the dispatcher fails the task."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bus import ControlBus
from infra.function import StatewrightFunction
from infra.nag import acknowledge, finding_resource
from infra.paths import SourcePaths
from infra.settings import EnvironmentSettings


class TaskRunner(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        paths: SourcePaths,
        layer: lambda_.ILayerVersion,
        bus: ControlBus,
        common_environment: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.runner = StatewrightFunction(
            self,
            "Runner",
            env_name=env_name,
            settings=settings,
            name="taskrunner",
            source=paths.handler_dir("task_runner"),
            layer=layer,
            environment={
                "STATEWRIGHT_ENV": env_name,
                "STATEWRIGHT_BUS": bus.bus_name,
                **common_environment,
            },
            # A task's function may run up to Lambda's limit; the runner waits for it.
            timeout=cdk.Duration.minutes(15),
            memory_mb=256,
            description=f"Statewright {env_name}: runs one Lambda task, reports Task Finished",
        )
        self.function = self.runner.function
        self.function.configure_async_invoke(
            # No Lambda-level retries: a task's retries are the engine's decision (its
            # retry policy), and a second run of a user's function must not happen behind
            # its back. A crash goes straight to the bus.
            retry_attempts=0,
            on_failure=bus.failure_destination(self.runner.role),
        )
        # Its own reports only: never a Machine Event (docs/security.md).
        bus.grant_task_reports(self.runner.role)
        stack = cdk.Stack.of(self)
        pattern = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=f"{settings.task_function_prefix}*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.runner.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[pattern])
        )
        acknowledge(
            self.runner.role,
            f"AwsSolutions-IAM5[Resource::{finding_resource(self, pattern)}]",
            "Tasks name their functions in specs, so the runner may invoke any function "
            "whose name starts with the environment's configured task_function_prefix "
            "(cdk.json) — and nothing else.",
        )
