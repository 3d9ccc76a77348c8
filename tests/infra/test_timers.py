"""Timers on EventBridge Scheduler (infra/timers.py): the environment's schedule group,
the role Scheduler invokes the dispatcher with, the queue of undelivered fires, and the
least privilege of the functions that arm timers."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized, own_arn
from tests.infra.test_iam import _actions, _listify, _role_statements, _statements_with

TIMER_VARS = (
    "STATEWRIGHT_SCHEDULE_GROUP",
    "STATEWRIGHT_SCHEDULER_ROLE_ARN",
    "STATEWRIGHT_DISPATCHER_ARN",
    "STATEWRIGHT_TIMER_DLQ_ARN",
)
ARMING_ROLES = ("DispatchDispatcherRole", "ReconcileReconcilerRole")


def group_name(synth: Synthesized) -> str:
    return f"statewright-{synth.env}"


def dispatcher_arn(synth: Synthesized) -> dict[str, Any]:
    return own_arn("lambda", f"function:statewright-{synth.env}-dispatcher")


def schedules_arn(synth: Synthesized) -> dict[str, Any]:
    return own_arn("scheduler", f"schedule/{group_name(synth)}/*")


def test_one_schedule_group_per_environment(synth: Synthesized) -> None:
    _, group = synth.one("AWS::Scheduler::ScheduleGroup")
    assert group["Properties"]["Name"] == group_name(synth)
    # Deleting a group deletes its schedules: a retained environment keeps it.
    assert group["DeletionPolicy"] == ("Retain" if synth.settings.retain else "Delete")


def test_the_scheduler_role_is_scheduler_s_own_for_this_group(synth: Synthesized) -> None:
    group_id, _ = synth.one("AWS::Scheduler::ScheduleGroup")
    _, role = synth.one("AWS::IAM::Role", "TimersSchedulerRole")
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"},
            "aws:SourceArn": {"Fn::GetAtt": [group_id, "Arn"]},
        }
    }


def test_the_scheduler_role_may_only_invoke_the_dispatcher_and_keep_what_fails(
    synth: Synthesized,
) -> None:
    queue_id, _ = synth.one("AWS::SQS::Queue", "TimersFailedFires")
    statements = _role_statements(synth, "TimersSchedulerRole")
    assert _actions(statements) == {"lambda:InvokeFunction", "sqs:SendMessage"}
    (invoke,) = _statements_with(statements, "lambda:InvokeFunction")
    assert invoke["Resource"] == dispatcher_arn(synth)
    # ... the very function the stack deploys as the dispatcher.
    assert synth.function("dispatcher")["FunctionName"] == f"statewright-{synth.env}-dispatcher"
    (send,) = _statements_with(statements, "sqs:SendMessage")
    assert send["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_the_dead_letter_queue_is_encrypted_tls_only_and_alarmed(synth: Synthesized) -> None:
    queue_id, queue = synth.one("AWS::SQS::Queue", "TimersFailedFires")
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    (statements,) = policies
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    alarms = synth.of_type("AWS::CloudWatch::Alarm").values()
    assert any(
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
        for a in alarms
    )


def test_arming_functions_may_create_and_delete_only_this_group_s_schedules(
    synth: Synthesized,
) -> None:
    role_id, _ = synth.one("AWS::IAM::Role", "TimersSchedulerRole")
    for role in ARMING_ROLES:
        statements = _role_statements(synth, role)
        (arm,) = _statements_with(statements, "scheduler:CreateSchedule")
        assert set(_listify(arm["Action"])) == {
            "scheduler:CreateSchedule",
            "scheduler:DeleteSchedule",
        }
        assert arm["Resource"] == schedules_arn(synth)
        assert {a for a in _actions(statements) if a.startswith("scheduler:")} == set(
            _listify(arm["Action"])
        )
        (pass_role,) = _statements_with(statements, "iam:PassRole")
        assert pass_role["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
        assert pass_role["Condition"] == {
            "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
        }


def test_no_other_role_arms_timers_or_passes_roles(synth: Synthesized) -> None:
    for logical_id in synth.of_type("AWS::IAM::Role"):
        if logical_id.startswith(ARMING_ROLES):
            continue
        if not any(
            {"Ref": logical_id} in p["Properties"].get("Roles", [])
            for p in synth.of_type("AWS::IAM::Policy").values()
        ):
            continue
        actions = _actions(_role_statements(synth, logical_id))
        assert not {a for a in actions if a.startswith("scheduler:")}, logical_id
        assert "iam:PassRole" not in actions, logical_id


def test_functions_that_arm_timers_are_configured_for_them(synth: Synthesized) -> None:
    role_id, _ = synth.one("AWS::IAM::Role", "TimersSchedulerRole")
    queue_id, _ = synth.one("AWS::SQS::Queue", "TimersFailedFires")
    for name in ("dispatcher", "reconciler"):
        env = synth.function(name)["Environment"]["Variables"]
        assert env["STATEWRIGHT_SCHEDULE_GROUP"] == group_name(synth)
        assert env["STATEWRIGHT_SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": [role_id, "Arn"]}
        assert env["STATEWRIGHT_DISPATCHER_ARN"] == dispatcher_arn(synth)
        assert env["STATEWRIGHT_TIMER_DLQ_ARN"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert not set(TIMER_VARS) & set(synth.function("taskrunner")["Environment"]["Variables"])
