"""The Timers port on EventBridge Scheduler (docs/aws.md#timers): one one-time schedule
per timer, in the environment's schedule group, invoking the dispatcher with the timer
as its input.

- The schedule's name is the timer's (``Timer.name``: deterministic, at most 64
  characters of Scheduler's alphabet), so arming a timer twice finds it armed
  (``ConflictException``) and keeps one schedule.
- ``at(yyyy-mm-ddThh:mm:ss)`` in UTC, rounded up to the second: Scheduler fires within
  the minute after that time, never before the timer is due. A due time less than
  ``LEAD_SECONDS`` away (or past: the reconciler re-arms lost timers) is scheduled that
  far from now, since a one-time schedule whose time has passed is not one Scheduler
  promises to run.
- ``ActionAfterCompletion: DELETE``: Scheduler deletes the schedule once it has fired.
- Retries on the target, then the dead-letter queue: a fire the dispatcher fails on (a
  throttled table, say) is delivered again for up to a day. A fire is idempotent (a
  timer's guard makes a second one ``stale``), so retrying is always safe."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from statewright.timers import Timer

LEAD_SECONDS = 60
# Scheduler's own bounds: 0-185 retries, events up to a day old.
RETRY_ATTEMPTS = 185
MAX_EVENT_AGE_SECONDS = 24 * 3600


def at_expression(when: datetime) -> str:
    """Scheduler's one-time expression for ``when`` (an aware time), in UTC, rounded up
    to the whole second."""
    utc = when.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({utc:%Y-%m-%dT%H:%M:%S})"


class SchedulerTimers:
    """Timers as EventBridge Scheduler one-time schedules (statewright.ports.Timers)."""

    def __init__(  # noqa: PLR0913 — keyword-only settings; wiring.py names each
        self,
        client: Any,  # boto3's "scheduler" client (the project has no stubs for it)
        *,
        group: str,
        role_arn: str,
        target_arn: str,
        dead_letter_arn: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self.group = group
        self.role_arn = role_arn
        self.target_arn = target_arn
        self.dead_letter_arn = dead_letter_arn
        self._clock = clock

    def arm(self, timers: Sequence[Timer]) -> None:
        for timer in timers:
            self._create(timer)

    def disarm(self, names: Sequence[str]) -> None:
        client = self._client
        for name in names:
            try:
                client.delete_schedule(Name=name, GroupName=self.group)
            except client.exceptions.ResourceNotFoundException:
                continue  # fired (and deleted by Scheduler), or never armed

    def schedule_expression(self, timer: Timer) -> str:
        due = datetime.fromisoformat(timer.due)
        earliest = self._clock() + timedelta(seconds=LEAD_SECONDS)
        return at_expression(max(due, earliest))

    def _create(self, timer: Timer) -> None:
        target: dict[str, Any] = {
            "Arn": self.target_arn,
            "RoleArn": self.role_arn,
            "Input": json.dumps(timer.target_input(), separators=(",", ":")),
            "RetryPolicy": {
                "MaximumRetryAttempts": RETRY_ATTEMPTS,
                "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
            },
        }
        if self.dead_letter_arn is not None:
            target["DeadLetterConfig"] = {"Arn": self.dead_letter_arn}
        client = self._client
        try:
            client.create_schedule(
                Name=timer.name,
                GroupName=self.group,
                ScheduleExpression=self.schedule_expression(timer),
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Description=_description(timer),
                Target=target,
            )
        except client.exceptions.ConflictException:
            return  # armed already: one name is one timer


def _description(timer: Timer) -> str:
    # What a person browsing the group sees; Scheduler allows 512 characters.
    return f"Statewright {timer.purpose.value} timer of machine {timer.machine_id}"[:512]
