"""A bus event whose conditional write keeps conflicting past the deadline must fail
the dispatcher's invocation (so EventBridge delivers it again), never be counted as
refused and dropped: a dropped event would be a lost transition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from statewright.aws import wiring
from statewright.aws.observability import METRICS
from statewright.errors import Conflict, VersionConflict
from statewright.model import Machine

from tests.integration.aws.deployment import Deployment, eventbridge


def test_a_conflict_past_the_deadline_fails_the_invocation_and_the_retry_applies(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment
    assert dep.api("POST", "/machines", {"spec": "preview-env", "id": "busy"})[0] == 201
    rt = wiring.runtime(handler_dir=Path(dep.dispatcher.__file__).resolve().parent, metrics=METRICS)
    monkeypatch.setattr(rt.store, "deadline_seconds", 0.05)
    real_update = rt.store.update

    def always_conflict(machine: Machine, expected_version: int, history: Any = ()) -> None:
        raise VersionConflict(machine.id)  # another writer wins every time

    monkeypatch.setattr(rt.store, "update", always_conflict)
    launch = eventbridge("my.app", "Machine Event", {"machine_id": "busy", "event": "LAUNCH"})
    with pytest.raises(Conflict):
        dep.deliver(launch)  # Lambda reports the failure; EventBridge retries
    assert dep.get("busy")[1]["state"] == "INIT"

    monkeypatch.setattr(rt.store, "update", real_update)
    assert dep.deliver(launch) == "applied"  # the retry
    assert dep.get("busy")[1]["state"] == "PROVISION"
