"""The dispatcher: every API request and every bus event goes through it to the service
layer. ``specs/`` ships inside its code asset, beside ``handler.py``."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bus import ControlBus
from infra.function import StatewrightFunction, removal_policy
from infra.grants import grant_service_access
from infra.paths import SourcePaths
from infra.queues import dead_letter_queue
from infra.settings import EnvironmentSettings
from infra.table import StateTable
from infra.task_runner import TaskRunner
from infra.terraform_runner import TerraformRunner

# Lambda unpacks the code asset here (LAMBDA_TASK_ROOT).
BUNDLED_SPECS_DIR = "/var/task/specs"


def service_environment(
    env_name: str,
    *,
    table: StateTable,
    bus: ControlBus,
    task_runner: TaskRunner,
    terraform: TerraformRunner,
) -> dict[str, str]:
    """The variables of docs/aws.md#configuration that the service layer is configured from."""
    return {
        "STATEWRIGHT_ENV": env_name,
        "STATEWRIGHT_TABLE": table.table.table_name,
        "STATEWRIGHT_BUS": bus.bus_name,
        "STATEWRIGHT_TASK_RUNNER": task_runner.function.function_name,
        "STATEWRIGHT_TERRAFORM_PROJECT": terraform.project.project_name,
    }


class Dispatcher(Construct):
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
        common_environment: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        # Bus events reach the dispatcher asynchronously; one that still fails after
        # Lambda's retries (a throttled table, say) is kept here instead of being lost.
        self.failed_events = dead_letter_queue(
            self,
            "FailedEvents",
            removal_policy=removal_policy(settings),
            holds="bus events the dispatcher failed on after Lambda's retries",
            of_event_target=False,
        )
        self.dispatcher = StatewrightFunction(
            self,
            "Dispatcher",
            env_name=env_name,
            settings=settings,
            name="dispatcher",
            source=paths.handler_dir("dispatcher"),
            extras={"specs": paths.specs},
            layer=layer,
            environment={
                **service_environment(
                    env_name, table=table, bus=bus, task_runner=task_runner, terraform=terraform
                ),
                "STATEWRIGHT_SPECS_DIR": BUNDLED_SPECS_DIR,
                **common_environment,
            },
            # API Gateway gives up after 29 s; the service's conflict deadline is 10 s.
            timeout=cdk.Duration.seconds(29),
            memory_mb=1024,
            description=f"Statewright {env_name}: HTTP API and bus events",
            dead_letter_queue=self.failed_events,
        )
        self.function = self.dispatcher.function
        grant_service_access(
            self.dispatcher.role,
            table=table,
            bus=bus,
            task_runner=task_runner,
            terraform=terraform,
        )
