"""The three functions: runtime, architecture, layer, own roles and log groups, the
configuration of docs/aws.md#configuration, the task runner's failure destination, the reconciler's
schedule — and what their code assets really contain."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match

from infra.paths import REPO_ROOT
from tests.infra.conftest import Synthesized

FUNCTIONS = ("dispatcher", "taskrunner", "reconciler")
HANDLER_DIRS = {"dispatcher": "dispatcher", "taskrunner": "task_runner", "reconciler": "reconciler"}
SERVICE_VARS = {
    "STATEWRIGHT_ENV",
    "STATEWRIGHT_TABLE",
    "STATEWRIGHT_BUS",
    "STATEWRIGHT_TASK_RUNNER",
    "STATEWRIGHT_TERRAFORM_PROJECT",
    "STATEWRIGHT_STATE_BUCKET",
    # timers (tests/infra/test_timers.py)
    "STATEWRIGHT_SCHEDULE_GROUP",
    "STATEWRIGHT_SCHEDULER_ROLE_ARN",
    "STATEWRIGHT_DISPATCHER_ARN",
    "STATEWRIGHT_TIMER_DLQ_ARN",
}


def _ref(synth: Synthesized, cfn_type: str, prefix: str = "") -> dict[str, Any]:
    logical_id, _ = synth.one(cfn_type, prefix)
    return {"Ref": logical_id}


def test_every_function_is_arm64_python313_with_the_layer_and_tracing(
    synth: Synthesized,
) -> None:
    layer = _ref(synth, "AWS::Lambda::LayerVersion")
    for name in FUNCTIONS:
        props = synth.function(name)
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == "handler.handler"
        assert props["Layers"] == [layer]
        assert props["TracingConfig"] == {"Mode": "Active"}
    synth.template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.13"], "CompatibleArchitectures": ["arm64"]},
    )


def test_each_function_has_its_own_role_and_log_group(synth: Synthesized) -> None:
    roles = [json.dumps(synth.function(name)["Role"]) for name in FUNCTIONS]
    assert len(set(roles)) == len(FUNCTIONS)
    groups = synth.of_type("AWS::Logs::LogGroup")
    for name in FUNCTIONS:
        logging = synth.function(name)["LoggingConfig"]
        group_id = logging["LogGroup"]["Ref"]
        group = groups[group_id]
        # Unnamed: a retained group never blocks re-creating the stack (test_stack.py).
        assert "LogGroupName" not in group["Properties"]
        assert group["Properties"]["RetentionInDays"] == synth.settings.log_retention_days
        assert group["DeletionPolicy"] == (
            "RetainExceptOnCreate" if synth.settings.retain else "Delete"
        )


def test_dispatcher_is_configured_with_exactly_the_design_variables(synth: Synthesized) -> None:
    env = synth.function("dispatcher")["Environment"]["Variables"]
    statewright = {k for k in env if k.startswith("STATEWRIGHT_")}
    assert statewright == SERVICE_VARS | {
        "STATEWRIGHT_SPECS_DIR",
        "STATEWRIGHT_HISTORY_RETENTION_DAYS",
        "STATEWRIGHT_STATE_CHANGED_NOTICES",
        "STATEWRIGHT_API_TYPE",
    }
    assert env["STATEWRIGHT_ENV"] == synth.env
    assert env["STATEWRIGHT_BUS"] == f"statewright-{synth.env}"
    assert env["STATEWRIGHT_TABLE"] == _ref(synth, "AWS::DynamoDB::Table")
    assert env["STATEWRIGHT_TASK_RUNNER"] == _ref(synth, "AWS::Lambda::Function", "TasksRunner")
    assert env["STATEWRIGHT_TERRAFORM_PROJECT"] == _ref(synth, "AWS::CodeBuild::Project")
    assert env["STATEWRIGHT_SPECS_DIR"] == "/var/task/specs"
    assert env["STATEWRIGHT_HISTORY_RETENTION_DAYS"] == str(synth.settings.history_retention_days)
    assert env["STATEWRIGHT_STATE_CHANGED_NOTICES"] == "true"  # cdk.json's notices
    assert env["STATEWRIGHT_API_TYPE"] == "rest"  # cdk.json's api.type: REST proxy events


def test_reconciler_has_the_service_variables_and_the_runner_reports_to_the_bus(
    synth: Synthesized,
) -> None:
    reconciler = synth.function("reconciler")["Environment"]["Variables"]
    assert reconciler["STATEWRIGHT_TABLE"] == _ref(synth, "AWS::DynamoDB::Table")
    assert set(reconciler) >= SERVICE_VARS
    assert reconciler["STATEWRIGHT_STATE_CHANGED_NOTICES"] == "true"  # its transitions too
    runner = synth.function("taskrunner")["Environment"]["Variables"]
    assert "STATEWRIGHT_STATE_CHANGED_NOTICES" not in runner  # it publishes no notices
    assert runner["STATEWRIGHT_BUS"] == f"statewright-{synth.env}"
    assert runner["STATEWRIGHT_ENV"] == synth.env


def test_task_runner_failures_go_to_the_bus_without_lambda_retries(synth: Synthesized) -> None:
    bus_id, _ = synth.one("AWS::Events::EventBus")
    runner_id, _ = synth.one("AWS::Lambda::Function", "TasksRunner")
    synth.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": runner_id},
            "MaximumRetryAttempts": 0,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [bus_id, "Arn"]}}},
        },
    )
    assert synth.function("taskrunner")["Timeout"] == 900


def test_dispatcher_keeps_events_it_failed_on(synth: Synthesized) -> None:
    dlq = synth.function("dispatcher")["DeadLetterConfig"]["TargetArn"]
    queue_id = dlq["Fn::GetAtt"][0]
    assert synth.resources[queue_id]["Type"] == "AWS::SQS::Queue"
    assert synth.function("dispatcher")["Timeout"] <= 29


def test_reconciler_runs_on_a_schedule(synth: Synthesized) -> None:
    reconciler_id, _ = synth.one("AWS::Lambda::Function", "ReconcileReconciler")
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": f"rate({synth.settings.reconcile_every_minutes} minutes)",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [reconciler_id, "Arn"]},
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                    }
                )
            ],
        },
    )


def _same_tree(left: Path, right: Path) -> None:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    assert not comparison.left_only, comparison.left_only
    assert not comparison.right_only, comparison.right_only
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    for sub in comparison.common_dirs:
        _same_tree(left / sub, right / sub)


def test_function_assets_hold_the_handlers_and_the_dispatcher_ships_specs(
    synth: Synthesized,
) -> None:
    for name in FUNCTIONS:
        asset = synth.asset_dir(synth.function(name)["Code"]["S3Key"])
        source = REPO_ROOT / "functions" / HANDLER_DIRS[name]
        assert filecmp.cmp(asset / "handler.py", source / "handler.py", shallow=False)
        assert (asset / "specs").is_dir() is (name == "dispatcher")
    dispatcher = synth.asset_dir(synth.function("dispatcher")["Code"]["S3Key"])
    _same_tree(dispatcher / "specs", REPO_ROOT / "specs")
    assert list((dispatcher / "specs").glob("*.yml")), "no spec shipped"
