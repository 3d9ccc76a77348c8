"""Timers on EventBridge Scheduler under moto, as strict as AWS (tests/aws_limits.py):
what a timer's schedule is (name, at(), group, role, retries, DLQ, deletion after it
fires), that arming twice keeps one schedule, that disarming cleans up, and that the
dispatcher applies a fire given the input Scheduler would invoke it with (the schedule's
target input as moto stored it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from statewright.aws.scheduler_timers import LEAD_SECONDS, SchedulerTimers, at_expression
from statewright.timers import Timer, TimerPurpose, task_guard

from tests import aws_limits
from tests.integration.aws.deployment import (
    DISPATCHER_ARN,
    REGION,
    SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN,
    TIMER_DLQ_ARN,
    Deployment,
    eventbridge,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

SPEC = """\
version: 1.0
events: [LAUNCH]
states:
  INIT: {on: {LAUNCH: [{action: advance, state: BUILD}]}}
  BUILD: {tasks: [build], on: {NEXT: [{action: advance, state: DONE}]}}
  DONE: {terminal: true}
tasks:
  build:
    executor: lambda
    config: {name: statewright-dev-task-db-setup}
    retry: {attempts: 2, backoff_seconds: 600}
    timeout_seconds: 300
"""


def scheduler() -> Any:
    return boto3.client("scheduler", region_name=REGION)


def schedules() -> dict[str, dict[str, Any]]:
    """The group's schedules, each as GetSchedule answers it."""
    client = scheduler()
    listed = client.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]
    return {
        s["Name"]: client.get_schedule(Name=s["Name"], GroupName=SCHEDULE_GROUP) for s in listed
    }


def timer(machine_id: str = "m-1", due: str = "2026-01-02T03:20:00.250Z") -> Timer:
    return Timer(
        purpose=TimerPurpose.ATTEMPT,
        machine_id=machine_id,
        due=due,
        guard=task_guard("build", 2, 2),
    )


@pytest.fixture
def timers(deployment: Deployment) -> Iterator[SchedulerTimers]:
    yield SchedulerTimers(
        scheduler(),
        group=SCHEDULE_GROUP,
        role_arn=SCHEDULER_ROLE_ARN,
        target_arn=DISPATCHER_ARN,
        dead_letter_arn=TIMER_DLQ_ARN,
        clock=lambda: NOW,
    )


# ---- the schedule ------------------------------------------------------------------------


def test_a_timer_is_a_one_time_schedule_that_invokes_the_dispatcher(
    timers: SchedulerTimers,
) -> None:
    t = timer()
    timers.arm([t])
    [(name, schedule)] = schedules().items()
    assert name == t.name
    assert schedule["GroupName"] == SCHEDULE_GROUP
    # Rounded up to the second: Scheduler never fires before the timer is due.
    assert schedule["ScheduleExpression"] == "at(2026-01-02T03:20:01)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    target = schedule["Target"]
    assert target["Arn"] == DISPATCHER_ARN and target["RoleArn"] == SCHEDULER_ROLE_ARN
    assert target["DeadLetterConfig"] == {"Arn": TIMER_DLQ_ARN}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert json.loads(target["Input"]) == {"statewright_timer": t.model_dump(mode="json")}


def test_arming_a_timer_again_keeps_one_schedule(timers: SchedulerTimers) -> None:
    t = timer()
    timers.arm([t])
    timers.arm([t, t])  # a repeated effect, a redelivered event: ConflictException
    assert list(schedules()) == [t.name]


def test_a_due_time_past_or_too_near_is_scheduled_a_lead_from_now(
    timers: SchedulerTimers,
) -> None:
    past = timer(due="2026-01-02T02:00:00.000Z")
    near = timer(machine_id="m-2", due="2026-01-02T03:04:20.000Z")
    timers.arm([past, near])
    expected = f"at(2026-01-02T03:{4 + LEAD_SECONDS // 60:02d}:05)"
    assert {s["ScheduleExpression"] for s in schedules().values()} == {expected}


def test_the_at_expression_is_utc_to_the_second() -> None:
    assert at_expression(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) == "at(2026-03-04T05:06:07)"
    berlin = datetime.fromisoformat("2026-03-04T06:06:07.001+01:00")
    assert at_expression(berlin) == "at(2026-03-04T05:06:08)"


def test_a_longest_machine_id_still_makes_a_valid_schedule_name(timers: SchedulerTimers) -> None:
    # A 128-character machine id: the name stays within Scheduler's 64 characters, which
    # tests/aws_limits.py enforces as AWS does (moto would take a longer one).
    t = timer(machine_id="a" + "b" * 127)
    assert len(t.name) <= aws_limits.SCHEDULE_NAME_CHARS
    timers.arm([t])
    assert list(schedules()) == [t.name]


def test_disarming_deletes_the_schedule_and_a_gone_one_is_no_error(
    timers: SchedulerTimers,
) -> None:
    kept, dropped = timer("keep"), timer("drop")
    timers.arm([kept, dropped])
    timers.disarm([dropped.name, "attempt-never-armed-0123456789abcdef"])
    assert list(schedules()) == [kept.name]


def test_without_a_dead_letter_queue_the_target_has_none(deployment: Deployment) -> None:
    plain = SchedulerTimers(
        scheduler(), group=SCHEDULE_GROUP, role_arn=SCHEDULER_ROLE_ARN, target_arn=DISPATCHER_ARN
    )
    plain.arm([timer()])
    [schedule] = schedules().values()
    assert "DeadLetterConfig" not in schedule["Target"]


# ---- through the dispatcher -----------------------------------------------------------------


@pytest.fixture
def timed(deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "timed.yml").write_text(SPEC)
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(specs))
    return deployment


def fire(dep: Deployment, schedule: dict[str, Any]) -> str:
    """What Scheduler does when the schedule's time comes: invoke the dispatcher with the
    target's input (as it was stored) as the event."""
    return dep.deliver(json.loads(schedule["Target"]["Input"]))


def failed(dep: Deployment, attempt: int) -> dict[str, Any]:
    [start] = [s for s in dep.lambda_starts if s.attempt == attempt]
    return eventbridge(
        "statewright",
        "Task Finished",
        {
            "machine_id": start.machine_id,
            "epoch": start.epoch,
            "task": start.task,
            "attempt": attempt,
            "status": "failed",
            "error": "Boom: try again",
            "report_token": start.report_token,  # as the task runner reports it
        },
    )


def by_purpose() -> dict[str, dict[str, Any]]:
    return {name.split("-", 1)[0]: schedule for name, schedule in schedules().items()}


def test_a_retry_waits_on_a_schedule_and_starts_when_it_fires(timed: Deployment) -> None:
    dep = timed
    assert dep.api("POST", "/machines", {"spec": "timed", "id": "t-1"})[0] == 201
    assert dep.api("POST", "/machines/t-1/events", {"event": "LAUNCH"})[0] == 202
    # Attempt 1 runs, with its timeout armed.
    assert [s.attempt for s in dep.lambda_starts] == [1]
    assert set(by_purpose()) == {"timeout"}
    assert dep.deliver(failed(dep, 1)) == "applied"
    # It failed: its timeout is disarmed, and attempt 2 waits on a schedule, not a sleep.
    waiting = by_purpose()
    assert set(waiting) == {"attempt"}
    record = dep.get("t-1")[1]["tasks"]["build"]
    assert (record["status"], record["attempt"]) == ("pending", 2)
    assert [s.attempt for s in dep.lambda_starts] == [1]
    # The schedule fires: the dispatcher starts attempt 2 (and arms its timeout).
    assert fire(dep, waiting["attempt"]) == "applied"
    assert [s.attempt for s in dep.lambda_starts] == [1, 2]
    assert dep.get("t-1")[1]["tasks"]["build"]["status"] == "running"
    # Scheduler delivers at least once: the same fire again changes nothing.
    assert fire(dep, waiting["attempt"]) == "stale"
    assert [s.attempt for s in dep.lambda_starts] == [1, 2]


def test_a_timeout_fires_through_the_dispatcher(timed: Deployment) -> None:
    dep = timed
    dep.api("POST", "/machines", {"spec": "timed", "id": "t-2"})
    dep.api("POST", "/machines/t-2/events", {"event": "LAUNCH"})
    assert fire(dep, by_purpose()["timeout"]) == "applied"
    _, history = dep.api("GET", "/machines/t-2/history")
    [finished] = [e for e in history["entries"] if e["kind"] == "task_finished"]
    assert (finished["attempt"], finished["status"]) == (1, "failed")
    assert finished["error_type"] == "Timeout"
    # The retry policy applies: attempt 2 waits for its backoff on a schedule.
    record = dep.get("t-2")[1]["tasks"]["build"]
    assert (record["status"], record["attempt"]) == ("pending", 2)
    assert set(by_purpose()) == {"attempt"}


def test_a_fire_that_is_not_a_timer_is_refused_and_dropped(timed: Deployment) -> None:
    assert timed.deliver({"statewright_timer": {"purpose": "attempt"}}) == "refused"
    assert timed.deliver({"statewright_timer": "not an object"}) == "refused"
