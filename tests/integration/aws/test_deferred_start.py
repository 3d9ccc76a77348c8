"""A task start that fails for a passing reason (throttling past the SDK's retries, a
service or network fault) must not turn a done transition into an API error: the request
answers as usual, the task stays pending, and the reconciler starts it."""

from __future__ import annotations

from typing import Any

import pytest
from statewright.aws import reconciler
from statewright.aws.lambda_executor import LambdaExecutor
from statewright.errors import StartDeferred
from statewright.model import TaskInvocation

from tests.integration.aws.deployment import Deployment, lambda_context


def test_a_throttled_start_answers_202_and_the_reconciler_starts_the_task(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment
    passing_through = LambdaExecutor.start
    throttled = [True]

    def start(self: LambdaExecutor, invocation: TaskInvocation) -> str:
        if throttled[0]:
            raise StartDeferred("Lambda did not queue the task: TooManyRequestsException")
        return passing_through(self, invocation)

    monkeypatch.setattr(LambdaExecutor, "start", start)

    status, machine = dep.api(
        "POST", "/machines/pr-1/events", {"event": "LAUNCH", "spec": "preview-env"}
    )
    assert status == 202
    assert machine["state"] == "PROVISION" and machine["status"] == "running"
    assert machine["tasks"]["db-setup"]["status"] == "pending"
    assert dep.lambda_starts == []

    throttled[0] = False
    monkeypatch.setattr(reconciler, "PENDING_GRACE_SECONDS", 0.0)
    report: Any = dep.reconciler.handler({}, lambda_context("reconciler"))
    assert report["recovery"]["tasks_started"] == 1, report
    [invocation] = dep.lambda_starts
    assert (invocation.task, invocation.epoch, invocation.attempt) == ("db-setup", 2, 1)
    _, machine = dep.get("pr-1")
    assert machine["tasks"]["db-setup"]["status"] == "running"
