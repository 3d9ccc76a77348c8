"""The reconciler, on a schedule: re-publishes lost NEXTs, restarts stuck pending tasks,
asks CodeBuild about builds whose events never came, fails tasks past their timeout."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bus import ControlBus
from infra.dispatcher import service_environment
from infra.function import StatewrightFunction, removal_policy
from infra.grants import grant_service_access
from infra.paths import SourcePaths
from infra.queues import dead_letter_queue
from infra.settings import EnvironmentSettings
from infra.table import StateTable
from infra.task_runner import TaskRunner
from infra.terraform_runner import TerraformRunner
from infra.timers import TimerScheduling


class Reconciler(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        paths: SourcePaths,
        layer: lambda_.ILayerVersion,
        table: StateTable,
        bus: ControlBus,
        task_runner: TaskRunner,
        terraform: TerraformRunner,
        timers: TimerScheduling,
        common_environment: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.reconciler = StatewrightFunction(
            self,
            "Reconciler",
            env_name=env_name,
            settings=settings,
            name="reconciler",
            source=paths.handler_dir("reconciler"),
            layer=layer,
            environment={
                **service_environment(
                    env_name,
                    table=table,
                    bus=bus,
                    task_runner=task_runner,
                    terraform=terraform,
                    timers=timers,
                ),
                **common_environment,
            },
            timeout=cdk.Duration.minutes(5),
            memory_mb=512,
            description=f"Statewright {env_name}: recovers lost NEXTs, stuck and timed-out tasks",
        )
        self.function = self.reconciler.function
        grant_service_access(
            self.reconciler.role,
            table=table,
            bus=bus,
            task_runner=task_runner,
            terraform=terraform,
        )
        # Recovery may start an attempt that waits for its backoff: it arms timers too.
        timers.grant_arm(self.reconciler.role)
        self.undelivered = dead_letter_queue(
            self,
            "UndeliveredTicks",
            removal_policy=removal_policy(settings),
            holds="schedule ticks EventBridge could not deliver to the reconciler",
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"Statewright {env_name}: run the reconciler",
            schedule=events.Schedule.rate(cdk.Duration.minutes(settings.reconcile_every_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.undelivered,
                    # A missed tick is harmless (the next one comes soon); don't pile up.
                    retry_attempts=2,
                    max_event_age=cdk.Duration.minutes(settings.reconcile_every_minutes),
                )
            ],
        )
