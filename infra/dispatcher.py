"""The dispatcher: every API request and every bus event goes through it to the service
layer. ``specs/`` ships inside its code asset, beside ``handler.py``."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bus import ControlBus
from infra.function import StatewrightFunction, removal_policy
from infra.grants import grant_service_access
from infra.paths import SourcePaths
from infra.queues import dead_letter_queue
from infra.settings import EnvironmentSettings, SettingsError, function_name
from infra.table import StateTable
from infra.task_runner import TaskRunner
from infra.terraform_runner import TerraformRunner
from infra.timers import TimerScheduling

# Lambda unpacks the code asset here (LAMBDA_TASK_ROOT).
BUNDLED_SPECS_DIR = "/var/task/specs"
# Lambda holds at most 4 KB of environment variables per function; the others take
# well under 1 KB.
MAX_ACCESS_BYTES = 3072


def access_environment(env_name: str, settings: EnvironmentSettings, specs: Path) -> dict[str, str]:
    """``STATEWRIGHT_ACCESS``: the environment's access rules as compact JSON, once they
    are known to name only deployed specs and their events (else SettingsError naming
    each rule by its index). No rules, no variable: everything is allowed."""
    if settings.access is None:
        return {}
    from statewright.access import AccessPolicy
    from statewright.catalog import SpecCatalog
    from statewright.errors import ConfigurationError

    try:
        catalog = SpecCatalog.from_folders([specs])
    except ConfigurationError as exc:
        raise SettingsError(f"cannot check cdk.json's access rules: {exc}") from exc
    problems = AccessPolicy(settings.access).problems(
        {spec.name: spec.events for spec in catalog.specs()}
    )
    if problems:
        raise SettingsError(f"cdk.json environment {env_name!r}: " + "; ".join(problems))
    value = json.dumps(
        [rule.model_dump(mode="json", exclude_none=True) for rule in settings.access],
        separators=(",", ":"),
    )
    if len(value.encode()) > MAX_ACCESS_BYTES:
        raise SettingsError(
            f"cdk.json environment {env_name!r}: the access rules take {len(value.encode())} "
            f"bytes as JSON; the dispatcher's environment holds at most {MAX_ACCESS_BYTES} "
            "(Lambda's 4 KB limit): merge rules, or use * patterns"
        )
    return {"STATEWRIGHT_ACCESS": value}


def service_environment(
    env_name: str,
    *,
    table: StateTable,
    bus: ControlBus,
    task_runner: TaskRunner,
    terraform: TerraformRunner,
    timers: TimerScheduling,
) -> dict[str, str]:
    """The variables of docs/aws.md#configuration that the service layer is configured from."""
    return {
        **timers.environment(),
        "STATEWRIGHT_ENV": env_name,
        "STATEWRIGHT_TABLE": table.table.table_name,
        "STATEWRIGHT_BUS": bus.bus_name,
        "STATEWRIGHT_TASK_RUNNER": task_runner.function.function_name,
        "STATEWRIGHT_TERRAFORM_PROJECT": terraform.project.project_name,
        "STATEWRIGHT_STATE_BUCKET": terraform.state_bucket.bucket_name,
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
        timers: TimerScheduling,
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
                    env_name,
                    table=table,
                    bus=bus,
                    task_runner=task_runner,
                    terraform=terraform,
                    timers=timers,
                ),
                "STATEWRIGHT_SPECS_DIR": BUNDLED_SPECS_DIR,
                # The event format of the API in front of it (infra/http_api.py, api.py).
                "STATEWRIGHT_API_TYPE": settings.api.type,
                **access_environment(env_name, settings, paths.specs),
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
        # A schedule's fan-out continues in an asynchronous invocation of the dispatcher
        # itself (statewright/aws/schedule_fanout.py). The ARN is built from the fixed
        # name: the function's own ARN attribute would make its role depend on it.
        self.dispatcher.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ContinueScheduleFanOut",
                actions=["lambda:InvokeFunction"],
                resources=[
                    cdk.Stack.of(self).format_arn(
                        service="lambda",
                        resource="function",
                        resource_name=function_name(env_name, "dispatcher"),
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        timers.grant_arm(self.dispatcher.role)
