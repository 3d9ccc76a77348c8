"""infra/schedules.py (docs/aws.md#schedules): one recurring EventBridge Scheduler
schedule per spec schedule, in the given group, invoking the dispatcher with the
scheduler role, undeliverable fires kept in the given queue. Synthesized in a small
stack of its own with cdk-nag's AwsSolutions checks, then checked with cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from statewright.spec.lint import lint_text
from statewright.spec.models import Spec

from infra.nag import enable_nag
from infra.queues import dead_letter_queue
from infra.schedules import SpecScheduleError, SpecSchedules
from tests.infra.conftest import cfn_lint_findings

SCHEDULED = """\
version: 1.0
events: [LAUNCH, SLEEP, WAKE, DESTROY]
schedules:
  - name: sleep
    cron: "0 19 * * MON-FRI"
    timezone: Europe/Berlin
    event: SLEEP
    states: [RUN]
  - name: wake
    cron: "0 7 * * 1-5"
    timezone: Europe/Berlin
    event: WAKE
  - name: quarter-hourly
    cron: "*/15 * * * *"
    event: SLEEP
states:
  INIT: {on: {LAUNCH: [{action: advance, state: RUN}]}}
  RUN: {on: {SLEEP: [{action: advance, state: ASLEEP}], DESTROY: [{action: advance, state: END}]}}
  ASLEEP: {on: {WAKE: [{action: advance, state: RUN}], SLEEP: [{action: no-op}]}}
  END: {terminal: true}
"""
TARGET = "arn:aws:lambda:eu-west-1:111122223333:function:statewright-dev-dispatcher"


def spec(text: str, name: str) -> Spec:
    result = lint_text(text, path=f"{name}.yml")
    assert result.spec is not None, result.findings
    return result.spec


def synthesize(tmp_path: Path, specs: list[Spec]) -> tuple[dict[str, Any], Path]:
    app = cdk.App(outdir=str(tmp_path))
    enable_nag(app)  # the synth fails on any AwsSolutions finding
    stack = cdk.Stack(
        app, "schedules", env=cdk.Environment(account="111122223333", region="eu-west-1")
    )
    group = scheduler.CfnScheduleGroup(stack, "Group", name="statewright-dev")
    queue = dead_letter_queue(
        stack, "FailedFires", removal_policy=cdk.RemovalPolicy.DESTROY, holds="schedule fires"
    )
    role = iam.Role(
        stack, "SchedulerRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")
    )
    SpecSchedules(
        stack,
        "Schedules",
        env_name="dev",
        specs=specs,
        group_name="statewright-dev",
        group=group,
        role=role,
        target_arn=TARGET,
        dead_letter_queue=queue,
    )
    app.synth()
    path = tmp_path / "schedules.template.json"
    return json.loads(path.read_text()), path


def _schedules(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Name"]: r["Properties"]
        for r in raw["Resources"].values()
        if r["Type"] == "AWS::Scheduler::Schedule"
    }


def test_each_spec_schedule_is_a_recurring_schedule_of_the_group(tmp_path: Path) -> None:
    raw, path = synthesize(tmp_path, [spec(SCHEDULED, "office-hours")])
    schedules = _schedules(raw)
    assert {
        name: (p["ScheduleExpression"], p["ScheduleExpressionTimezone"])
        for name, p in schedules.items()
    } == {
        "dev.office-hours.sleep": ("cron(0 19 ? * MON-FRI *)", "Europe/Berlin"),
        "dev.office-hours.wake": ("cron(0 7 ? * MON-FRI *)", "Europe/Berlin"),
        "dev.office-hours.quarter-hourly": ("cron(0/15 * * * ? *)", "UTC"),
    }
    (group_id,) = [k for k, v in raw["Resources"].items() if v["Type"].endswith("ScheduleGroup")]
    for logical_id, resource in raw["Resources"].items():
        if resource["Type"] != "AWS::Scheduler::Schedule":
            continue
        properties = resource["Properties"]
        name = properties["Name"]
        assert len(name) <= 64
        assert group_id in resource["DependsOn"], logical_id  # the group exists first
        assert properties["GroupName"] == "statewright-dev"
        assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert properties["State"] == "ENABLED"
        target = properties["Target"]
        assert target["Arn"] == TARGET
        assert json.loads(target["Input"]) == {
            "statewright_schedule": {
                "spec": "office-hours",
                "schedule": name.split(".")[-1],
                "fire": "<aws.scheduler.scheduled-time>",
            }
        }
        assert "SchedulerRole" in json.dumps(target["RoleArn"])
        assert "FailedFires" in json.dumps(target["DeadLetterConfig"]["Arn"])
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": 10,
            "MaximumEventAgeInSeconds": 3600,
        }
    assert cfn_lint_findings(path) == ""


def test_specs_without_schedules_make_none(tmp_path: Path) -> None:
    plain = spec(SCHEDULED, "office-hours").model_copy(update={"schedules": None})
    raw, _ = synthesize(tmp_path, [plain])
    assert _schedules(raw) == {}


def test_a_name_too_long_for_scheduler_stops_the_synth(tmp_path: Path) -> None:
    # The linter refuses such a name (rule `schedule`); a spec that did not pass
    # through it is still stopped here, before CloudFormation would refuse it.
    scheduled = spec(SCHEDULED, "office-hours")
    assert scheduled.schedules is not None
    long = scheduled.schedules[0].model_copy(update={"name": "s" * 60})
    with pytest.raises(SpecScheduleError, match="longer than 64"):
        synthesize(tmp_path, [scheduled.model_copy(update={"schedules": [long]})])
