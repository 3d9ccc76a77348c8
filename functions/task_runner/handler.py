"""The task-runner Lambda: runs one attempt of a ``lambda`` task and reports it
(statewright.aws.task_runner). Queued by the dispatcher with InvocationType Event."""

from __future__ import annotations

from typing import Any

from statewright.aws.observability import run
from statewright.aws.task_runner import task_runner


def _run(event: Any, context: Any) -> Any:
    detail = task_runner().run(event)
    return {"status": detail.status}


def handler(event: Any, context: Any) -> Any:
    return run(_run, event, context, function="task_runner")
