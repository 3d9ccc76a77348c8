"""Timers on EventBridge Scheduler: the environment's schedule group, the role Scheduler
invokes the dispatcher with, the queue of fires it could not deliver, and what the
functions that arm timers may do (statewright/aws/scheduler_timers.py; docs/aws.md#timers).

One-time schedules are made at run time by the dispatcher and the reconciler; recurring
ones (spec schedules) by the CDK app, in the same group with the same role and queue
(``group``, ``role``, ``dead_letter_queue``, ``target_arn``)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from infra.function import removal_policy
from infra.nag import acknowledge, finding_resource
from infra.queues import dead_letter_queue
from infra.settings import EnvironmentSettings, function_name

SCHEDULER_SERVICE = "scheduler.amazonaws.com"


def schedule_group_name(env_name: str) -> str:
    return f"statewright-{env_name}"


class TimerScheduling(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # Deleting a group deletes its schedules: with ``retain`` the group stays too.
        self.group = scheduler.ScheduleGroup(
            self,
            "Group",
            schedule_group_name=schedule_group_name(env_name),
            removal_policy=removal_policy(settings),
        )
        self.group_name = schedule_group_name(env_name)
        # Built from the function's fixed name: the dispatcher's own settings name it as
        # the target, which its ARN attribute could not do without a circular reference.
        self.target_arn = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=function_name(env_name, "dispatcher"),
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.schedules_arn = stack.format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{self.group_name}/*",
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.dead_letter_queue = dead_letter_queue(
            self,
            "FailedFires",
            removal_policy=removal_policy(settings),
            holds="timer and schedule fires EventBridge Scheduler could not deliver to the "
            "dispatcher after its retries",
        )
        self.role = iam.Role(
            self,
            "SchedulerRole",
            description=f"Statewright {env_name}: EventBridge Scheduler invokes the dispatcher",
            # Only Scheduler, only for this account's schedules in this group (the
            # confused-deputy guard AWS documents for Scheduler: the source is the
            # schedule group, never a schedule or a name prefix).
            assumed_by=iam.ServicePrincipal(
                SCHEDULER_SERVICE,
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": stack.account,
                        "aws:SourceArn": self.group.schedule_group_arn,
                    }
                },
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeTheDispatcher",
                actions=["lambda:InvokeFunction"],
                resources=[self.target_arn],
            )
        )
        # Scheduler writes an undeliverable fire to the queue with the schedule's role.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="KeepUndeliveredFires",
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
            )
        )

    def environment(self) -> dict[str, str]:
        """The settings of docs/aws.md#configuration that arm timers."""
        return {
            "STATEWRIGHT_SCHEDULE_GROUP": self.group_name,
            "STATEWRIGHT_SCHEDULER_ROLE_ARN": self.role.role_arn,
            "STATEWRIGHT_TIMER_DLQ_ARN": self.dead_letter_queue.queue_arn,
            "STATEWRIGHT_DISPATCHER_ARN": self.target_arn,
        }

    def grant_arm(self, role: iam.IRole) -> None:
        """What a function that arms and disarms timers may do: create and delete
        schedules of this group only, and hand Scheduler this role only."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ArmTimers",
                actions=["scheduler:CreateSchedule", "scheduler:DeleteSchedule"],
                resources=[self.schedules_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassTheSchedulerRole",
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
            )
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{finding_resource(role, self.schedules_arn)}]",
            "A timer's schedule is named at run time after its machine and purpose; "
            "creating and deleting is limited to this environment's own schedule group.",
        )
