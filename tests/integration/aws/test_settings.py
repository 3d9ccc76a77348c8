"""The AWS configuration: exactly docs/aws.md#configuration's variables, read at first use, a clear
error naming every missing one."""

from __future__ import annotations

from pathlib import Path

import pytest
from statewright.aws.settings import (
    ENV_VARS,
    OPTIONAL_ENV_VARS,
    Settings,
    load_settings,
    load_task_runner_settings,
)
from statewright.errors import ConfigurationError

COMPLETE = {
    "STATEWRIGHT_ENV": "dev",
    "STATEWRIGHT_TABLE": "statewright-dev",
    "STATEWRIGHT_BUS": "statewright-dev",
    "STATEWRIGHT_TASK_RUNNER": "statewright-dev-taskrunner",
    "STATEWRIGHT_TERRAFORM_PROJECT": "statewright-dev-terraform",
    "STATEWRIGHT_STATE_BUCKET": "statewright-dev-state",
    "STATEWRIGHT_SCHEDULE_GROUP": "statewright-dev",
    "STATEWRIGHT_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/statewright-dev-scheduler",
    "STATEWRIGHT_DISPATCHER_ARN": (
        "arn:aws:lambda:us-east-1:123456789012:function:statewright-dev-dispatcher"
    ),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS + OPTIONAL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_every_missing_variable_is_named_with_what_it_should_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, {"STATEWRIGHT_ENV": "dev", "STATEWRIGHT_BUS": "b"})
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    for name in ("STATEWRIGHT_TABLE", "STATEWRIGHT_TASK_RUNNER", "STATEWRIGHT_TERRAFORM_PROJECT"):
        assert f"{name} is not set" in message
    assert "DynamoDB table" in message and "CodeBuild project" in message
    assert "STATEWRIGHT_ENV" not in message and "STATEWRIGHT_SPECS_DIR" not in message


def test_an_empty_variable_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**COMPLETE, "STATEWRIGHT_TABLE": ""})
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_TABLE is invalid"):
        load_settings()


def test_history_retention_is_optional_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE)
    assert load_settings().HISTORY_RETENTION_DAYS is None  # keep history as long as machines
    monkeypatch.setenv("STATEWRIGHT_HISTORY_RETENTION_DAYS", "30")
    assert load_settings().HISTORY_RETENTION_DAYS == 30
    monkeypatch.setenv("STATEWRIGHT_HISTORY_RETENTION_DAYS", "0")
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_HISTORY_RETENTION_DAYS is invalid"):
        load_settings()


def test_state_changed_notices_are_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE)
    assert load_settings().STATE_CHANGED_NOTICES is True
    monkeypatch.setenv("STATEWRIGHT_STATE_CHANGED_NOTICES", "false")
    assert load_settings().STATE_CHANGED_NOTICES is False  # read again once it changes
    monkeypatch.setenv("STATEWRIGHT_STATE_CHANGED_NOTICES", "maybe")
    with pytest.raises(
        ConfigurationError, match=r"STATEWRIGHT_STATE_CHANGED_NOTICES is invalid.*true or false"
    ):
        load_settings()


def test_the_api_type_is_rest_unless_set_to_http(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE)
    assert load_settings().API_TYPE == "rest"
    monkeypatch.setenv("STATEWRIGHT_API_TYPE", "http")
    assert load_settings().API_TYPE == "http"
    monkeypatch.setenv("STATEWRIGHT_API_TYPE", "websocket")
    with pytest.raises(
        ConfigurationError, match=r"STATEWRIGHT_API_TYPE is invalid.*rest \(API Gateway REST API\)"
    ):
        load_settings()


def test_a_complete_environment_is_read_and_kept_until_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, COMPLETE)
    first = load_settings()
    assert (first.ENV, first.TABLE, first.TERRAFORM_PROJECT) == (
        "dev",
        "statewright-dev",
        "statewright-dev-terraform",
    )
    assert load_settings() is first  # parsed once
    monkeypatch.setenv("STATEWRIGHT_TABLE", "other")
    assert load_settings().TABLE == "other"


def test_the_specs_folder_defaults_to_the_one_beside_the_handler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_env(monkeypatch, COMPLETE)
    handler_dir = tmp_path / "functions" / "dispatcher"
    (handler_dir / "specs").mkdir(parents=True)
    assert load_settings().specs_dir(handler_dir) == handler_dir / "specs"
    # In a checkout, functions/dispatcher has no specs/: the repository's is used.
    bare = tmp_path / "repo" / "functions" / "dispatcher"
    bare.mkdir(parents=True)
    (tmp_path / "repo" / "specs").mkdir()
    assert load_settings().specs_dir(bare) == tmp_path / "repo" / "specs"
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(tmp_path / "mine"))
    assert load_settings().specs_dir(handler_dir) == tmp_path / "mine"


def test_the_task_runner_needs_only_the_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_BUS is not set"):
        load_task_runner_settings()
    monkeypatch.setenv("STATEWRIGHT_BUS", "statewright-dev")
    assert load_task_runner_settings().BUS == "statewright-dev"


def test_the_model_holds_exactly_the_documented_variables() -> None:
    fields = {f"STATEWRIGHT_{name}" for name in Settings.model_fields}
    assert fields == set(ENV_VARS) | set(OPTIONAL_ENV_VARS)
    # The optional one has a default: the required variables alone are a full configuration.
    assert all(
        not Settings.model_fields[v.removeprefix("STATEWRIGHT_")].is_required()
        for v in OPTIONAL_ENV_VARS
    )


def test_the_dispatcher_imports_without_any_configuration() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "functions" / "dispatcher" / "handler.py"
    spec = importlib.util.spec_from_file_location("dispatcher_without_env", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # nothing is read at import time
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_TABLE is not set"):
        module.handler({"source": "x", "detail-type": "y", "detail": {}}, None)


def test_timers_need_their_group_role_and_target_and_may_have_a_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timer_vars = (
        "STATEWRIGHT_SCHEDULE_GROUP",
        "STATEWRIGHT_SCHEDULER_ROLE_ARN",
        "STATEWRIGHT_DISPATCHER_ARN",
    )
    set_env(monkeypatch, {k: v for k, v in COMPLETE.items() if k not in timer_vars})
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    for name in timer_vars:
        assert f"{name} is not set" in str(caught.value)
    assert "EventBridge Scheduler group" in str(caught.value)
    set_env(monkeypatch, COMPLETE)
    assert load_settings().TIMER_DLQ_ARN is None  # undeliverable fires are then dropped
    monkeypatch.setenv("STATEWRIGHT_TIMER_DLQ_ARN", "arn:aws:sqs:us-east-1:123456789012:q")
    assert load_settings().TIMER_DLQ_ARN == "arn:aws:sqs:us-east-1:123456789012:q"
