"""The event a ``lambda`` task's function receives — one definition for every mode (the
AWS task runner invokes the function with it; the local executor pipes it to the
function's process), so a function behaves the same wherever it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statewright.executors.builtin import LambdaConfig
    from statewright.model import TaskInvocation


def function_event(invocation: TaskInvocation, config: LambdaConfig) -> dict[str, Any]:
    """``{"machine_id", "spec", "state", "task", "epoch", "attempt", "metadata",
    "outputs", "args"}`` (docs/runtime.md, "Inputs"); ``args`` is the task's
    ``config.args``, ``outputs`` the earlier task outputs of this machine."""
    return {
        "machine_id": invocation.machine_id,
        "spec": invocation.spec,
        "state": invocation.state,
        "task": invocation.task,
        "epoch": invocation.epoch,
        "attempt": invocation.attempt,
        "metadata": invocation.metadata,
        "outputs": invocation.outputs,
        "args": config.args or {},
    }
