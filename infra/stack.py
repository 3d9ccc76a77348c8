"""One Statewright control plane: a thin stack composing one construct per concern."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct
from statewright.catalog import SpecCatalog

from infra.api import ControlPlaneApi
from infra.bus import ControlBus
from infra.dispatcher import Dispatcher
from infra.http_api import ControlPlaneHttpApi
from infra.layer import RuntimeLayer
from infra.observability import Observability
from infra.paths import SourcePaths
from infra.reconciler import Reconciler
from infra.rules import DispatcherRules
from infra.schedules import SpecSchedules
from infra.settings import EnvironmentSettings
from infra.specs_check import SpecProblem, unrunnable_tasks
from infra.table import StateTable
from infra.task_runner import TaskRunner
from infra.terraform_runner import TerraformRunner
from infra.timers import TimerScheduling


def stack_name(env_name: str) -> str:
    return f"statewright-{env_name}"


class StatewrightStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        paths: SourcePaths,
    ) -> None:
        name = stack_name(env_name)
        super().__init__(
            scope,
            name,
            stack_name=name,
            description=f"Statewright control plane ({env_name})",
            env=cdk.Environment(account=settings.account, region=settings.region)
            if settings.account or settings.region
            else None,
            termination_protection=settings.retain,
            analytics_reporting=False,
        )
        cdk.Tags.of(self).add("statewright:environment", env_name)
        # What of the shipped specs this deployment could not run (reported by app.py).
        self.spec_problems: list[SpecProblem] = unrunnable_tasks(paths.specs, settings)
        common = {"STATEWRIGHT_HISTORY_RETENTION_DAYS": str(settings.history_retention_days)}
        # Only the functions that run the service publish notices (the task runner reports).
        service_env = {
            **common,
            "STATEWRIGHT_STATE_CHANGED_NOTICES": str(settings.notices.state_changed).lower(),
        }

        table = StateTable(self, "State", settings=settings)
        bus = ControlBus(self, "Events", env_name=env_name)
        runtime = RuntimeLayer(self, "Runtime", paths=paths)
        # None: the layer ships no bytecode for the runtime's Python (reported by app.py).
        self.layer_bytecode = runtime.bytecode
        layer = runtime.layer
        terraform = TerraformRunner(
            self,
            "Terraform",
            env_name=env_name,
            settings=settings,
            paths=paths,
            bus=bus,
            table=table,
        )
        task_runner = TaskRunner(
            self,
            "Tasks",
            env_name=env_name,
            settings=settings,
            paths=paths,
            layer=layer,
            bus=bus,
            common_environment=common,
        )
        timers = TimerScheduling(self, "Timers", env_name=env_name, settings=settings)
        # The deployed specs' schedules: recurring schedules in the timers' group, with
        # its role and dead-letter queue (infra/schedules.py).
        SpecSchedules(
            self,
            "Schedules",
            env_name=env_name,
            specs=SpecCatalog.from_folders([paths.specs]).specs(),
            group_name=timers.group_name,
            group=timers.group,
            role=timers.role,
            target_arn=timers.target_arn,
            dead_letter_queue=timers.dead_letter_queue,
        )
        dispatcher = Dispatcher(
            self,
            "Dispatch",
            env_name=env_name,
            settings=settings,
            paths=paths,
            layer=layer,
            table=table,
            bus=bus,
            task_runner=task_runner,
            terraform=terraform,
            timers=timers,
            common_environment=service_env,
        )
        reconciler = Reconciler(
            self,
            "Reconcile",
            env_name=env_name,
            settings=settings,
            paths=paths,
            layer=layer,
            table=table,
            bus=bus,
            task_runner=task_runner,
            terraform=terraform,
            timers=timers,
            common_environment=service_env,
        )
        control_plane_roles = [
            dispatcher.dispatcher.role,
            reconciler.reconciler.role,
            task_runner.runner.role,
            terraform.role,
        ]
        bus.trust_internal_source_only_from(control_plane_roles)
        if settings.bus_senders is not None:
            bus.admit_only(settings.bus_senders, control_plane_roles)
        rules = DispatcherRules(
            self,
            "Routing",
            env_name=env_name,
            settings=settings,
            bus=bus,
            dispatcher=dispatcher.function,
            task_runner=task_runner.function,
            terraform_project_name=terraform.project.project_name,
        )
        api_construct = ControlPlaneHttpApi if settings.api.type == "http" else ControlPlaneApi
        api = api_construct(
            self, "Http", env_name=env_name, settings=settings, dispatcher=dispatcher.function
        )
        Observability(
            self,
            "Monitoring",
            env_name=env_name,
            settings=settings,
            functions={
                "Dispatcher": dispatcher.function,
                "TaskRunner": task_runner.function,
                "Reconciler": reconciler.function,
            },
            dead_letter_queues={
                "DispatcherFailedEvents": dispatcher.failed_events,
                "UndeliveredEvents": rules.undelivered,
                "UndeliveredReconcilerTicks": reconciler.undelivered,
                "UndeliveredTimerFires": timers.dead_letter_queue,
            },
            api=api.api,
            table=table.table,
            terraform_project_name=terraform.project.project_name,
        )
        for output_id, value, description in (
            ("BusName", bus.bus_name, "EventBridge bus for Machine Event messages"),
            ("TableName", table.table.table_name, "DynamoDB table of machines"),
            ("StateBucketName", terraform.state_bucket.bucket_name, "Terraform state"),
            ("TerraformProjectName", terraform.project.project_name, "CodeBuild project"),
            ("ScheduleGroupName", timers.group_name, "EventBridge Scheduler group of timers"),
        ):
            cdk.CfnOutput(self, output_id, value=value, description=description)
