"""Access rules on AWS: the dispatcher under moto, configured with STATEWRIGHT_ACCESS as
the CDK app sets it, answering API Gateway events from different principals (assumed
roles matched as their role, ``*`` patterns), filtering listings, and recording the
actor of every history entry — behind a REST API and behind an HTTP API alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from statewright.access import AccessPolicy
from statewright.local.control_plane import LocalControlPlane

from tests.integration.access_cases import (
    CI,
    DEVELOPER,
    LOCAL,
    PLATFORM,
    RULES,
    hidden_alike,
    run_local_steps,
)
from tests.integration.aws.deployment import API_TYPES, REPO, Deployment, eventbridge, use_api


@pytest.fixture(params=API_TYPES)
def dep(
    request: pytest.FixtureRequest, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> Deployment:
    """Behind either API: each puts the signer where its payload format says."""
    monkeypatch.setenv("STATEWRIGHT_ACCESS", json.dumps(RULES))
    return use_api(deployment, monkeypatch, request.param)


def as_(dep: Deployment, principal: str) -> Any:
    def call(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return dep.api(method, path, body, principal=principal, **kw)

    return call


def test_callers_may_do_exactly_what_the_rules_say(dep: Deployment) -> None:
    ci, platform, developer = as_(dep, CI), as_(dep, PLATFORM), as_(dep, DEVELOPER)
    # CI (an assumed-role session of role/ci) launches and destroys pr-* of preview-env
    assert ci("POST", "/machines/pr-7/events", {"event": "LAUNCH", "spec": "preview-env"})[0] == 202
    assert ci("GET", "/machines/pr-7")[0] == 200
    # ... and nothing else
    status, body = ci("POST", "/machines", {"spec": "tenant-lifecycle", "id": "pr-8"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert body["error"]["message"] == (
        f"{CI} may not create machine pr-8 of spec tenant-lifecycle: no access rule allows it"
    )
    assert ci("POST", "/machines", {"spec": "preview-env", "id": "staging"})[0] == 403
    assert ci("POST", "/machines/pr-7/retry")[0] == 403
    # the platform role runs tenants, and reads everything
    assert platform("POST", "/machines", {"spec": "tenant-lifecycle", "id": "acme"})[0] == 201
    assert platform("POST", "/machines/acme/events", {"event": "ACTIVATE"})[0] == 202
    assert platform("GET", "/machines/pr-7")[0] == 200
    status, body = platform("POST", "/machines/pr-7/events", {"event": "DESTROY"})
    assert status == 403
    assert body["error"]["message"] == (
        f"{PLATFORM} may not send DESTROY to machine pr-7 of spec preview-env: "
        "no access rule allows it"
    )
    # CI may not OFFBOARD a tenant, whatever its id
    status, body = ci("POST", "/machines/acme/events", {"event": "OFFBOARD"})
    assert status == 403
    assert body["error"]["message"] == (
        f"{CI} may not send OFFBOARD to machine acme: no access rule allows it"
    )
    # a caller no rule names may do nothing, and is told who it is
    status, body = developer("GET", "/machines/acme")
    assert status == 403 and DEVELOPER in body["error"]["message"]
    # the tenant is untouched by the refusals
    assert platform("GET", "/machines/acme")[1]["state"] == "PROVISION"


def test_a_machine_the_caller_may_not_read_answers_as_a_missing_one(dep: Deployment) -> None:
    platform = as_(dep, PLATFORM)
    assert platform("POST", "/machines", {"spec": "tenant-lifecycle", "id": "pr-tenant"})[0] == 201
    # CI may read and send to pr-* of preview-env only: pr-tenant is not one of them
    hidden_alike(as_(dep, CI), "pr-tenant", "pr-missing")
    # CI may not read acme at all (no rule for that id): refused before any lookup
    assert platform("POST", "/machines", {"spec": "tenant-lifecycle", "id": "acme"})[0] == 201
    hidden_alike(as_(dep, CI), "acme", "acme-missing")
    hidden_alike(as_(dep, DEVELOPER), "acme", "acme-missing")


def test_listings_hold_only_what_the_caller_may_read(dep: Deployment) -> None:
    ci, platform = as_(dep, CI), as_(dep, PLATFORM)
    for machine_id in ("pr-1", "pr-2", "pr-3"):
        assert ci("POST", "/machines", {"spec": "preview-env", "id": machine_id})[0] == 201
    for machine_id in ("acme", "pr-tenant", "zeta"):
        assert (
            platform("POST", "/machines", {"spec": "tenant-lifecycle", "id": machine_id})[0] == 201
        )

    def every(call: Any, limit: int, spec: str | None = None) -> tuple[list[str], int]:
        ids: list[str] = []
        pages = 0
        query: dict[str, str] = {"limit": str(limit)}
        if spec:
            query["spec"] = spec
        while True:
            status, page = call("GET", "/machines", query=query)
            assert status == 200
            pages += 1
            ids += [m["id"] for m in page["machines"]]
            if page["next_token"] is None:
                return sorted(ids), pages
            query["next_token"] = page["next_token"]

    everything = ["acme", "pr-1", "pr-2", "pr-3", "pr-tenant", "zeta"]
    assert every(platform, 100)[0] == everything
    for limit in (1, 2, 4):
        # pages shrink to what CI may read; their tokens still lead through the rest
        ids, pages = every(ci, limit)
        assert ids == ["pr-1", "pr-2", "pr-3"]
        assert pages >= len(everything) // limit
        assert every(platform, limit)[0] == everything
    assert every(ci, 2, spec="tenant-lifecycle")[0] == []
    assert every(as_(dep, DEVELOPER), 3) == ([], 2)


def test_every_history_entry_names_its_actor(dep: Deployment) -> None:
    ci = as_(dep, CI)
    assert ci("POST", "/machines", {"spec": "preview-env", "id": "pr-9"})[0] == 201
    assert ci("POST", "/machines/pr-9/events", {"event": "LAUNCH"})[0] == 202
    # the Lambda task's completion and the NEXT it leads to come from the control plane
    dep.run_task_runner(dep.lambda_starts[0])
    for event in dep.dispatched(dep.published()):
        dep.deliver(event)
    for event in dep.dispatched(dep.published()):
        dep.deliver(event)
    # a user's rule on the bus sends DESTROY
    destroy = eventbridge(
        "ci.pipeline", "Machine Event", {"machine_id": "pr-9", "event": "DESTROY"}
    )
    assert dep.deliver(destroy) == "applied"

    status, page = ci("GET", "/machines/pr-9/history")
    assert status == 200
    rows = [
        (e["kind"], e.get("event") or e.get("task"), e["source"], e["actor"])
        for e in page["entries"]
    ]
    assert rows == [
        ("created", None, "api", CI),
        ("event", "LAUNCH", "api", CI),
        ("transition", "LAUNCH", None, CI),
        ("task_started", "db-setup", None, "statewright"),
        ("task_finished", "db-setup", None, "statewright"),
        ("event", "NEXT", "statewright", "statewright"),
        ("transition", "NEXT", None, "statewright"),
        ("event", "DESTROY", "bus:ci.pipeline", "bus:ci.pipeline"),
        ("transition", "DESTROY", None, "bus:ci.pipeline"),
        ("task_started", "db-teardown", None, "statewright"),
    ]


def test_the_local_callers_steps_answer_as_on_aws(dep: Deployment, tmp_path: Path) -> None:
    """The same rules and requests, with ``local`` as the principal API Gateway reports,
    answer exactly as a local control plane with those rules does (whose HTTP server
    tests/integration/local/test_serve_access.py holds to the same steps)."""
    on_aws = run_local_steps(
        lambda method, path, body: dep.api(method, path, body, principal=LOCAL)
    )
    assert on_aws[6] == (202, ("pr-1", "preview-env", "PROVISION"))
    with LocalControlPlane(
        specs_dirs=[REPO / "specs"], data_dir=tmp_path, access=AccessPolicy.parse(RULES)
    ) as plane:

        def local(method: str, path: str, body: Any) -> tuple[int, Any]:
            answer = plane.request(method, path, body)
            return answer.status, answer.body

        assert run_local_steps(local) == on_aws


def test_without_rules_every_caller_may_do_everything(deployment: Deployment) -> None:
    developer = as_(deployment, DEVELOPER)
    assert developer("POST", "/machines", {"spec": "tenant-lifecycle", "id": "acme"})[0] == 201
    assert developer("POST", "/machines/acme/events", {"event": "ACTIVATE"})[0] == 202
    entries = developer("GET", "/machines/acme/history")[1]["entries"]
    assert {e["actor"] for e in entries[:2]} == {DEVELOPER}
