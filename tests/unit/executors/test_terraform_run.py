"""What every Terraform executor agrees on (statewright.executors.terraform_run): state
names, variables and outputs, and the event a lambda task's function receives."""

from __future__ import annotations

from typing import Any

import pytest
from statewright.executors.builtin import LambdaConfig, LocalSource, S3Source, TerraformConfig
from statewright.executors.function_event import function_event
from statewright.executors.terraform_run import (
    OutputsNotUnderstood,
    source_digest,
    state_name,
    terraform_outputs,
    terraform_variables,
)
from statewright.model import TaskInvocation
from statewright.spec.models import TaskSpec


def invocation(config: dict[str, Any], metadata: dict[str, Any] | None = None) -> TaskInvocation:
    return TaskInvocation(
        machine_id="pr-1",
        spec="preview-env",
        spec_digest="sha256:x",
        state="PROVISION",
        task="infra",
        task_spec=TaskSpec.model_validate({"executor": "terraform", "config": config}),
        epoch=3,
        attempt=2,
        metadata=metadata or {},
        outputs={"db": {"url": "u"}},
        timeout_seconds=60,
    )


def test_state_names_of_running_machines_keep_their_meaning() -> None:
    """The digests machines already keep their states under (computed by both former
    copies of source_digest, which agreed on these): a change here would silently give
    running machines an empty state."""
    assert source_digest(S3Source(type="s3", bucket="b", key="machines.tf")) == "b06a7e4983b01750"
    local = LocalSource(type="local", location="../terraform/preview-env")
    assert source_digest(local) == "45707e4452884ec5"
    assert state_name("pr-1", local) == "pr-1/45707e4452884ec5"


def test_variables_are_metadata_then_task_variables_then_the_reserved_ones() -> None:
    config = TerraformConfig.model_validate(
        {
            "action": "apply",
            "source": {"type": "local", "location": "m"},
            "variables": {"size": 3, "tags": {"team": "a"}},
        }
    )
    inv = invocation(
        config.model_dump(),
        # stored before reserved keys were refused: left out, never overriding
        metadata={"size": 1, "owner": "ana", "stack_id": "other", "statewright_x": 1},
    )
    variables = terraform_variables(inv, config)
    assert variables == {"size": 3, "owner": "ana", "tags": {"team": "a"}, "stack_id": "pr-1"}
    assert list(variables)[-1] == "stack_id"


@pytest.mark.parametrize("name", ["stack_id", "statewright_", "statewright_env"])
def test_a_task_may_not_set_a_reserved_variable(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} is reserved"):
        TerraformConfig.model_validate(
            {
                "action": "apply",
                "source": {"type": "local", "location": "m"},
                "variables": {name: 1},
            }
        )


def test_outputs_become_name_and_value_without_the_sensitive_ones() -> None:
    raw = {
        "url": {"sensitive": False, "type": "string", "value": "https://x"},
        "ids": {"sensitive": False, "type": ["list", "string"], "value": ["a", "b"]},
        "password": {"sensitive": True, "type": "string", "value": "hunter2"},
        "odd": {"type": "string", "value": "no sensitive flag: hidden"},
    }
    outputs = terraform_outputs(raw)
    assert outputs.values == {"url": "https://x", "ids": ["a", "b"]}
    assert outputs.redacted == ["odd", "password"]
    assert terraform_outputs({}).values == {} and terraform_outputs({}).redacted == []


@pytest.mark.parametrize("raw", [[1], "x", {"a": 1}, {"a": {"type": "string"}}])
def test_outputs_in_another_shape_are_refused(raw: Any) -> None:
    with pytest.raises(OutputsNotUnderstood):
        terraform_outputs(raw)


def test_the_function_event_is_the_documented_one() -> None:
    inv = invocation({}, metadata={"owner": "ana"})
    config = LambdaConfig(name="db-setup", args={"size": "s"})
    assert function_event(inv, config) == {
        "machine_id": "pr-1",
        "spec": "preview-env",
        "state": "PROVISION",
        "task": "infra",
        "epoch": 3,
        "attempt": 2,
        "metadata": {"owner": "ana"},
        "outputs": {"db": {"url": "u"}},
        "args": {"size": "s"},
    }
    assert function_event(inv, LambdaConfig(name="db-setup"))["args"] == {}
