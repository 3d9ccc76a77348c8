"""cdk.json's ``notices.state_changed``: the dispatcher puts ``Machine State Changed`` on
the bus only when the deployment subscribes, under moto. What the control plane needs
itself (Task Finished, NEXT) and ``Machine Deleted`` are put either way, and history still
records every transition (tests/unit/test_notices.py: Machine Deleted is always put)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.aws.deployment import Deployment

STATE_CHANGED = "Machine State Changed"


def _to_run(dep: Deployment, machine_id: str) -> list[dict[str, Any]]:
    """Create, LAUNCH, the Lambda task's report and the NEXT it fires: what was put."""
    put: list[dict[str, Any]] = []
    assert dep.api("POST", "/machines", {"spec": "preview-env", "id": machine_id})[0] == 201
    assert dep.api("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})[0] == 202
    dep.run_task_runner(dep.lambda_starts[-1])
    for _ in range(2):  # Task Finished, then the NEXT it fires
        published = dep.published()
        put += published
        for event in dep.dispatched(published):
            assert dep.deliver(event) == "applied"
    put += dep.published()
    status, machine = dep.get(machine_id)
    assert status == 200 and machine["state"] == "RUN"
    return put


def test_state_changes_are_put_by_default(deployment: Deployment) -> None:
    put = _to_run(deployment, "on-1")
    changes = [
        (e["detail"]["from"], e["detail"]["to"]) for e in put if e["detail-type"] == STATE_CHANGED
    ]
    assert changes == [(None, "INIT"), ("INIT", "PROVISION"), ("PROVISION", "RUN")]


def test_turned_off_no_state_change_is_put_and_the_lifecycle_runs_the_same(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEWRIGHT_STATE_CHANGED_NOTICES", "false")
    put = _to_run(deployment, "off-1")
    kinds = [e["detail-type"] for e in put]
    assert STATE_CHANGED not in kinds
    assert kinds.count("Task Finished") == 1 and kinds.count("Machine Event") == 1  # NEXT
    status, page = deployment.api("GET", "/machines/off-1/history", query={"limit": "1000"})
    transitions = [
        (e["from_state"], e["to_state"]) for e in page["entries"] if e["kind"] == "transition"
    ]
    assert status == 200 and transitions == [("INIT", "PROVISION"), ("PROVISION", "RUN")]
