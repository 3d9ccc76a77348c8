"""The deployed specs' schedules (docs/aws.md#schedules): one recurring EventBridge
Scheduler schedule per spec schedule, in the environment's schedule group, invoking the
dispatcher with the group's role, undeliverable fires kept in the timers' queue.

The dispatcher gets ``{"statewright_schedule": {"spec", "schedule", "fire"}}`` with
``fire`` filled in by Scheduler (``<aws.scheduler.scheduled-time>``) and fans the fire
out to the spec's machines (statewright/schedules.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IDependable
from statewright.cron import scheduler_expression
from statewright.schedules import TARGET_KEY
from statewright.spec.models import Spec
from statewright.spec.rules import SCHEDULER_NAME_CHARS, scheduler_name

# Scheduler's own placeholder for the time a fire was scheduled for.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# A fire Scheduler cannot deliver is retried for up to an hour, then kept in the queue;
# a fan-out an hour late is still better than none (each machine takes a fire once).
RETRY_ATTEMPTS = 10
MAX_EVENT_AGE_SECONDS = 3600


def schedule_input(spec: str, schedule: str) -> str:
    """The target input of a spec schedule's recurring schedule."""
    return json.dumps(
        {TARGET_KEY: {"spec": spec, "schedule": schedule, "fire": SCHEDULED_TIME}},
        separators=(",", ":"),
    )


class SpecScheduleError(Exception):
    """A spec schedule cannot become a Scheduler schedule in this environment."""


class SpecSchedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        specs: Sequence[Spec],
        group_name: str,
        group: IDependable,
        role: iam.IRole,
        target_arn: str,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for spec in specs:
            for schedule in spec.schedules or []:
                name = scheduler_name(env_name, spec.name, schedule.name)
                if len(name) > SCHEDULER_NAME_CHARS:  # the linter's rule `schedule` says why
                    raise SpecScheduleError(
                        f"spec {spec.name}, schedule {schedule.name}: the Scheduler name "
                        f"{name!r} is longer than {SCHEDULER_NAME_CHARS} characters"
                    )
                resource = scheduler.CfnSchedule(
                    self,
                    re.sub(r"[^A-Za-z0-9]", "", f"{spec.name}-{schedule.name}") or "Schedule",
                    name=name,
                    group_name=group_name,
                    description=(
                        f"Statewright {env_name}: {schedule.event} to the machines of "
                        f"{spec.name} ({schedule.cron}, {schedule.timezone})"
                    )[:512],
                    schedule_expression=scheduler_expression(schedule.cron),
                    schedule_expression_timezone=schedule.timezone,
                    flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(
                        mode="OFF"
                    ),
                    state="ENABLED",
                    target=scheduler.CfnSchedule.TargetProperty(
                        arn=target_arn,
                        role_arn=role.role_arn,
                        input=schedule_input(spec.name, schedule.name),
                        retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                            maximum_retry_attempts=RETRY_ATTEMPTS,
                            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                        ),
                        dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                            arn=dead_letter_queue.queue_arn
                        ),
                    ),
                )
                resource.node.add_dependency(group)
                self.schedules[name] = resource
