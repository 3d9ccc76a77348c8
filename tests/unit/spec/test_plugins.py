"""Executors registered by a plugin are accepted by the linter and their config is
validated by the plugin's own model, under the plugin's own rule id."""

from __future__ import annotations

import pytest
import statewright.executors.registry as registry_module
import statewright.spec.lint as lint_module
import statewright.spec.schema as schema_module
from pydantic import BaseModel, ConfigDict
from statewright.executors.registry import ExecutorPlugin, registry

from tests.unit.spec.helpers import edit, lint, marked_lines, rule_lines


class StepFunctionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arn: str


PLUGIN = ExecutorPlugin(
    name="stepfunction",
    config_model=StepFunctionConfig,
    default_timeout_seconds=600,
    rule="stepfunction-config",
)


@pytest.fixture
def with_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = {**registry(), PLUGIN.name: PLUGIN}
    monkeypatch.setattr(lint_module, "registry", lambda: plugins)
    monkeypatch.setattr(schema_module, "registry", lambda: plugins)
    monkeypatch.setattr(registry_module, "registry", lambda: plugins)


def test_a_plugin_executor_is_accepted(with_plugin: None) -> None:
    text = edit(
        "    executor: lambda\n    config:\n      name: db-setup\n",
        "    executor: stepfunction\n    config:\n      arn: arn:aws:states:eu-west-1:1:x\n",
    )
    result = lint(text)
    assert result.findings == []
    assert result.spec is not None
    assert result.spec.tasks["db-setup"].executor == "stepfunction"


def test_a_plugin_task_without_timeout_gets_the_plugin_default(with_plugin: None) -> None:
    text = edit(
        "    executor: lambda\n    config:\n      name: db-setup\n",
        "    executor: stepfunction\n    config:\n      arn: arn:aws:states:eu-west-1:1:x\n",
    )
    spec = lint(text).spec
    assert spec is not None
    assert spec.tasks["db-setup"].timeout == 600
    # Resolved, not written: the normalized spec (and so its digest) stays as written.
    assert "timeout_seconds" not in spec.document()["tasks"]["db-setup"]


def test_a_plugin_config_error_carries_the_plugin_rule(with_plugin: None) -> None:
    text = edit(
        "    executor: lambda\n    config:\n      name: db-setup\n",
        "    executor: stepfunction\n    config:\n      arm: x #!\n",
    )
    result = lint(text)
    assert set(rule_lines(result, "stepfunction-config")) & set(marked_lines(text))
    assert any("did you mean `arn`?" in f.message for f in result.findings)


def test_without_the_plugin_the_executor_is_unknown() -> None:
    text = edit("    executor: lambda\n", "    executor: stepfunction\n")
    assert rule_lines(lint(text), "executor")


def test_the_schema_knows_plugin_configs(with_plugin: None) -> None:
    schema = schema_module.spec_schema()
    assert "stepfunction-config" in schema["definitions"]
    assert "stepfunction" in schema["definitions"]["task"]["properties"]["executor"]["enum"]
