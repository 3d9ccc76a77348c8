"""Two plugins with an implementation in one mode only, registered beside the example
plugin by the tests' distribution metadata (conftest.py): a spec naming one of them is
refused when the specs load in the other mode."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from statewright.executors.registry import AwsContext, ExecutorPlugin, LocalContext
from statewright.ports import TaskInvocation


class AnyConfig(BaseModel):
    model_config = ConfigDict(extra="allow")


class NeverStarted:
    """Never asked to start anything: the specs naming it are refused first."""

    name = "never"

    def start(self, invocation: TaskInvocation) -> str:
        raise AssertionError(f"{invocation.task} should have been refused at load")

    def cancel(self, run_id: str) -> None:
        return None


def _local(context: LocalContext) -> NeverStarted:
    return NeverStarted()


def _aws(context: AwsContext) -> NeverStarted:
    return NeverStarted()


CLOUD_ONLY = ExecutorPlugin(
    name="cloud-only",
    config_model=AnyConfig,
    default_timeout_seconds=60,
    rule="cloud-only-config",
    aws=_aws,
)
LOCAL_ONLY = ExecutorPlugin(
    name="desk-only",
    config_model=AnyConfig,
    default_timeout_seconds=60,
    rule="desk-only-config",
    local=_local,
)
