"""TTL on AWS (docs/runtime.md, "TTL"): the dispatcher under moto answering POST
/machines with a ttl and POST /machines/{id}/ttl, and an expiry timer fired into the
service of the AWS wiring (DynamoDB store, EventBridge bus): its warning and its expire
event go out on the bus, and the expire event, delivered back, ends the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from statewright.aws import wiring
from statewright.timers import Timer, TimerPurpose

from tests.integration.aws.deployment import Deployment

SPEC = """\
version: 1.0
events: [LAUNCH, DESTROY]
states:
  INIT:
    on:
      LAUNCH: [{action: advance, state: RUN}]
  RUN:
    on:
      DESTROY: [{action: advance, state: GONE}]
  GONE:
    terminal: true
lifecycle:
  ttl: 8h
  max_ttl: 3d
  expire_event: DESTROY
  warn_before: [1h]
"""
ANA = "arn:aws:iam::123456789012:user/ana"


@pytest.fixture
def dep(deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Deployment:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "preview.yml").write_text(SPEC)
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(specs))
    return deployment


def kinds(dep: Deployment, machine_id: str) -> list[tuple[str, Any, Any]]:
    status, page = dep.api("GET", f"/machines/{machine_id}/history")
    assert status == 200, page
    return [(e["kind"], e.get("source"), e.get("actor")) for e in page["entries"]]


def test_the_ttl_routes_answer_through_api_gateway(dep: Deployment) -> None:
    status, machine = dep.api("POST", "/machines", {"spec": "preview", "id": "pr-1", "ttl": "2h"})
    assert status == 201, machine
    assert machine["expired"] is False and machine["expires_at"].endswith("Z")
    status, extended = dep.api("POST", "/machines/pr-1/ttl", {"ttl": "3d"}, principal=ANA)
    assert status == 200, extended
    assert extended["expires_at"] > machine["expires_at"]
    assert kinds(dep, "pr-1")[-1] == ("ttl_changed", "api", ANA)
    status, error = dep.api("POST", "/machines/pr-1/ttl", {"ttl": "4d"})
    assert status == 400 and error["error"]["code"] == "invalid_request"
    assert "its max_ttl is 3d" in error["error"]["message"]
    assert dep.get("pr-1")[1]["expires_at"] == extended["expires_at"]
    status, error = dep.api("POST", "/machines", {"spec": "preview", "id": "pr-2", "ttl": "a day"})
    assert (status, error["error"]["code"]) == (400, "invalid_request")
    assert dep.get("pr-2")[0] == 404


def test_an_expiry_timer_sends_the_expire_event_over_eventbridge(dep: Deployment) -> None:
    status, machine = dep.api(
        "POST", "/machines/pr-1/events", {"event": "LAUNCH", "spec": "preview"}
    )
    assert status == 202 and machine["state"] == "RUN", machine
    expires_at = machine["expires_at"]
    dep.published()  # what creation and LAUNCH published
    service = wiring.runtime().service
    warning = Timer(
        purpose=TimerPurpose.WARNING,
        machine_id="pr-1",
        due=expires_at,  # (its due time does not matter to the guard)
        guard={"expires_at": expires_at, "offset": 3600},
    )
    expiry = Timer(
        purpose=TimerPurpose.EXPIRY,
        machine_id="pr-1",
        due=expires_at,
        guard={"expires_at": expires_at},
    )
    assert service.fire_timer(warning).value == "applied"
    assert service.fire_timer(expiry).value == "applied"
    assert service.fire_timer(expiry).value == "stale"  # fired twice: once
    published = dep.published()
    assert [e["detail-type"] for e in published] == ["Machine Expiring", "Machine Event"]
    assert published[0]["detail"]["expires_at"] == expires_at
    expire_event = published[1]
    assert expire_event["source"] == "statewright"
    assert (
        expire_event["detail"]["reason"] == "expiry"
        and expire_event["detail"]["event"] == "DESTROY"
    )
    assert dep.get("pr-1")[1]["expired"] is True
    assert [k for k in kinds(dep, "pr-1") if k[1] == "expiry"] == [
        ("expiring", "expiry", "expiry"),
        ("expired", "expiry", "expiry"),
    ]
    # EventBridge delivers it to the dispatcher (as the CDK app's rule does): GONE, deleted
    assert dep.deliver(expire_event) == "applied"
    assert dep.get("pr-1")[0] == 404
    assert dep.deliver(expire_event) in ("refused", "stale")
