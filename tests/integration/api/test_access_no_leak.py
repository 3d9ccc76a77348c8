"""A refusal tells nothing about whether a machine exists: for random access rules, every
request the rules refuse on an existing machine, from a caller who may not read that
machine, gets exactly the answer it gets from a control plane where the machine does
not exist (same rules, same request)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statewright.access import ACTIONS, LOCAL_PRINCIPAL, AccessPolicy
from statewright.local.control_plane import LocalControlPlane

REPO = Path(__file__).resolve().parents[3]
MACHINES = {"pr-1": "preview-env", "t-1": "tenant-lifecycle"}
EVENTS = ["LAUNCH", "DESTROY", "ACTIVATE", "OFFBOARD"]


@pytest.fixture(scope="module")
def planes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalControlPlane, ...]]:
    """One control plane holding the machines, one holding none."""
    with (
        LocalControlPlane(
            specs_dirs=[REPO / "specs"], data_dir=tmp_path_factory.mktemp("with")
        ) as full,
        LocalControlPlane(
            specs_dirs=[REPO / "specs"], data_dir=tmp_path_factory.mktemp("without")
        ) as empty,
    ):
        for machine_id, spec in MACHINES.items():
            assert full.request("POST", "/machines", {"spec": spec, "id": machine_id}).status == 201
        yield full, empty


def some(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, min_size=1, max_size=2)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "principals": some(st.sampled_from([LOCAL_PRINCIPAL, "loc*", "ci"])),
        "actions": some(st.sampled_from(ACTIONS)),
        "specs": some(st.sampled_from(sorted(set(MACHINES.values())))),
        "events": some(st.sampled_from(EVENTS)),
        "machines": some(st.sampled_from(["pr-*", "t-*", "*-1", "pr-1", "x"])),
    }
    return {k: v for k, v in ((k, draw(s)) for k, s in fields.items()) if draw(st.booleans())}


requests = st.one_of(
    st.tuples(st.just("GET"), st.sampled_from(["", "/history"]), st.none()),
    st.tuples(st.just("POST"), st.just("/retry"), st.none()),
    st.tuples(
        st.just("POST"),
        st.just("/events"),
        st.sampled_from(EVENTS).map(lambda e: {"event": e}),
    ),
)
ACTION_OF = {"": "read", "/history": "read", "/retry": "retry", "/events": "send"}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(rules(), max_size=3), st.sampled_from(sorted(MACHINES)), requests)
def test_refused_requests_answer_alike_whether_the_machine_exists_or_not(
    planes: tuple[LocalControlPlane, LocalControlPlane],
    rule_list: list[dict[str, Any]],
    machine_id: str,
    request: tuple[str, str, Any],
) -> None:
    full, empty = planes
    policy = AccessPolicy.parse(rule_list)
    method, suffix, body = request
    event = body["event"] if body else None
    action = ACTION_OF[suffix]
    spec = MACHINES[machine_id]
    allowed = policy.allows(LOCAL_PRINCIPAL, action, spec=spec, machine_id=machine_id, event=event)  # type: ignore[arg-type]
    if allowed or policy.allows(LOCAL_PRINCIPAL, "read", spec=spec, machine_id=machine_id):
        # An allowed request may well tell, and so may a refused one to a caller who
        # may read the machine (reading it tells): the property is about the others.
        return
    for plane in planes:
        plane.service.access = policy
    path = f"/machines/{machine_id}{suffix}"
    there = full.request(method, path, body)
    absent = empty.request(method, path, body)
    assert there.status in (403, 404), (there.status, there.body)
    assert (there.status, json.dumps(there.body)) == (absent.status, json.dumps(absent.body))
