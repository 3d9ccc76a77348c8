"""EventBridge rules that feed the dispatcher, each target with a dead-letter queue.

On ``statewright-<env>``:
- ``Machine Event`` and ``Task Finished`` from ``source: statewright`` (internal: NEXT,
  FAILED, task completions — only the control plane's roles may use that source);
- ``Machine Event`` from any other source unless it names a system event (NEXT, FAILED)
  — users' rules and CloudSeam messages (whose event is in ``action``);
- the task runner's failed invocations (its Lambda on-failure destination).
On the default bus: ``CodeBuild Build State Change`` of our Terraform project, once the
build has ended.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from statewright.spec import rules as spec_rules

from infra.bus import INTERNAL_SOURCE, ControlBus
from infra.function import removal_policy
from infra.queues import dead_letter_queue
from infra.settings import EnvironmentSettings

SYSTEM_EVENTS = list(spec_rules.SYSTEM_EVENTS)
BUILD_ENDED = ["SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT"]
LAMBDA_FAILURE = "Lambda Function Invocation Result - Failure"


def _not_system_event(field: str) -> dict[str, Any]:
    return {field: events.Match.anything_but(*SYSTEM_EVENTS)}


class DispatcherRules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        bus: ControlBus,
        dispatcher: lambda_.IFunction,
        task_runner: lambda_.IFunction,
        terraform_project_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.undelivered = dead_letter_queue(
            self,
            "Undelivered",
            removal_policy=removal_policy(settings),
            holds="bus and CodeBuild events EventBridge could not deliver to the dispatcher",
        )
        self.rules: dict[str, events.Rule] = {}
        self._rule(
            "InternalEvents",
            f"Statewright {env_name}: NEXT/FAILED and Task Finished from the control plane",
            bus=bus.bus,
            pattern=events.EventPattern(
                source=[INTERNAL_SOURCE], detail_type=["Machine Event", "Task Finished"]
            ),
            dispatcher=dispatcher,
        )
        self._rule(
            "ExternalEvents",
            f"Statewright {env_name}: users' machine events (never NEXT/FAILED)",
            bus=bus.bus,
            pattern=events.EventPattern(
                source=events.Match.anything_but(INTERNAL_SOURCE),
                detail_type=["Machine Event"],
                detail={"$or": [_not_system_event("event"), _not_system_event("action")]},
            ),
            dispatcher=dispatcher,
        )
        self._rule(
            "TaskRunnerFailures",
            f"Statewright {env_name}: task runner invocations that failed (destination)",
            bus=bus.bus,
            pattern=events.EventPattern(
                source=["lambda"],
                detail_type=[LAMBDA_FAILURE],
                detail={
                    "requestContext": {"functionArn": events.Match.prefix(task_runner.function_arn)}
                },
            ),
            dispatcher=dispatcher,
        )
        self._rule(
            "TerraformBuildEnded",
            f"Statewright {env_name}: a Terraform build of ours has ended",
            bus=None,
            pattern=events.EventPattern(
                source=["aws.codebuild"],
                detail_type=["CodeBuild Build State Change"],
                detail={
                    "project-name": [terraform_project_name],
                    "build-status": BUILD_ENDED,
                },
            ),
            dispatcher=dispatcher,
        )

    def _rule(
        self,
        construct_id: str,
        description: str,
        *,
        bus: events.IEventBus | None,
        pattern: events.EventPattern,
        dispatcher: lambda_.IFunction,
    ) -> None:
        self.rules[construct_id] = events.Rule(
            self,
            construct_id,
            description=description,
            event_bus=bus,
            event_pattern=pattern,
            targets=[
                targets.LambdaFunction(
                    dispatcher,
                    dead_letter_queue=self.undelivered,
                    retry_attempts=185,
                    max_event_age=cdk.Duration.hours(24),
                )
            ],
        )
