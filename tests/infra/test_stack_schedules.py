"""The deployed specs' schedules in the template (docs/aws.md#schedules): one recurring
EventBridge Scheduler schedule per spec schedule, in the environment's group, invoking
the dispatcher with the scheduler role, its fires kept in the timers' queue when
undeliverable; the template still passes cdk-nag (the synth) and cfn-lint."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.app import build_app
from infra.paths import REPO_ROOT, SourcePaths
from tests.infra.conftest import cfn_lint_findings
from tests.infra.test_schedules import SCHEDULED


@dataclass(frozen=True)
class _OtherSpecs(SourcePaths):
    """The repository's sources with another specs folder."""

    specs_folder: Path = REPO_ROOT / "specs"

    @property
    def specs(self) -> Path:
        return self.specs_folder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    specs = tmp_path_factory.mktemp("specs")
    shutil.copytree(REPO_ROOT / "specs", specs, dirs_exist_ok=True)
    (specs / "office-hours.yml").write_text(SCHEDULED)
    outdir = tmp_path_factory.mktemp("cdk-scheduled")
    # The synth runs cdk-nag's AwsSolutions checks: it fails on any finding.
    build_app("dev", outdir=str(outdir), paths=_OtherSpecs(specs_folder=specs)).synth()
    path = outdir / "statewright-dev.template.json"
    yield json.loads(path.read_text()), path


def _resources(raw: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == cfn_type}


def test_each_spec_schedule_is_a_recurring_schedule(template: tuple[dict[str, Any], Path]) -> None:
    raw, _ = template
    schedules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in _resources(raw, "AWS::Scheduler::Schedule").values()
    }
    assert set(schedules) == {
        "dev.office-hours.sleep",
        "dev.office-hours.wake",
        "dev.office-hours.quarter-hourly",
    }
    expressions = {
        name: (p["ScheduleExpression"], p["ScheduleExpressionTimezone"])
        for name, p in schedules.items()
    }
    assert expressions == {
        "dev.office-hours.sleep": ("cron(0 19 ? * MON-FRI *)", "Europe/Berlin"),
        "dev.office-hours.wake": ("cron(0 7 ? * MON-FRI *)", "Europe/Berlin"),
        "dev.office-hours.quarter-hourly": ("cron(0/15 * * * ? *)", "UTC"),
    }
    (group_id,) = _resources(raw, "AWS::Scheduler::ScheduleGroup")
    (dispatcher_id,) = [
        k
        for k, v in _resources(raw, "AWS::Lambda::Function").items()
        if v["Properties"].get("FunctionName") == "statewright-dev-dispatcher"
    ]
    for name, properties in schedules.items():
        assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert properties["State"] == "ENABLED"
        group = properties["GroupName"]
        assert group == "statewright-dev" or group == {"Ref": group_id}, group
        target = properties["Target"]
        assert json.loads(target["Input"]) == {
            "statewright_schedule": {
                "spec": "office-hours",
                "schedule": name.split(".")[-1],
                "fire": "<aws.scheduler.scheduled-time>",
            }
        }
        assert "dispatcher" in json.dumps(target["Arn"]), target["Arn"]
        assert dispatcher_id  # the dispatcher exists beside them
        assert "SchedulerRole" in json.dumps(target["RoleArn"])
        assert "FailedFires" in json.dumps(target["DeadLetterConfig"]["Arn"])
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1


def test_the_template_with_schedules_passes_cfn_lint(template: tuple[dict[str, Any], Path]) -> None:
    _, path = template
    assert cfn_lint_findings(path) == ""


def test_the_shipped_specs_have_no_schedules_so_none_is_made(synth: Any) -> None:
    assert synth.of_type("AWS::Scheduler::Schedule") == {}
