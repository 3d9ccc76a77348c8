"""The HTTP API of docs/api.md through LocalControlPlane.request, which builds the same
API Gateway proxy events as the HTTP server: routes, status codes, error codes, fields,
headers, idempotency and the screening of hostile bodies."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statewright.api import build_api
from statewright.catalog import SpecCatalog
from statewright.errors import VersionConflict
from statewright.local.bus import LocalBus
from statewright.local.control_plane import LocalControlPlane
from statewright.local.server import proxy_event
from statewright.local.sqlite_store import SqliteStore
from statewright.model import MACHINE_ID_PATTERN, Machine
from statewright.service import Service

from tests.integration.local.helpers import FIXTURES

MACHINE_FIELDS = {
    "id",
    "spec",
    "spec_digest",
    "state",
    "previous_state",
    "status",
    "epoch",
    "version",
    "tasks",
    "metadata",
    "created_at",
    "updated_at",
    "halted",
    "expires_at",
    "expired",
}
TASK_FIELDS = {
    "executor",
    "status",
    "attempt",
    "started_at",
    "finished_at",
    "error",
    "error_type",
    "output",
    "redacted_outputs",
    "state",
    "epoch",
    "waiting_for",
}


def new_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def error_of(response: Any, status: int, code: str) -> str:
    assert response.status == status, response.body
    assert set(response.body) == {"error"}
    assert response.body["error"]["code"] == code, response.body
    message = response.body["error"]["message"]
    assert message and "Traceback" not in message
    return message


def waiting(m: Machine | None) -> bool:
    return m is not None and m.status == "waiting"


def failed(m: Machine | None) -> bool:
    return m is not None and m.status == "failed"


# ---- specs ----------------------------------------------------------------------------


def test_list_specs(plane: LocalControlPlane) -> None:
    response = plane.request("GET", "/specs")
    assert response.status == 200
    specs = {s["name"]: s for s in response.body["specs"]}
    assert {"jobs", "demo"} <= set(specs)
    assert set(specs["jobs"]) == {"name", "digest", "events", "states"}
    assert specs["jobs"]["events"] == ["LAUNCH", "TOUCH", "DESTROY"]
    assert specs["jobs"]["states"] == ["INIT", "PROVISION", "RUN", "DONE"]
    assert specs["jobs"]["digest"].startswith("sha256:")


def test_get_spec_is_the_normalized_spec_with_name_and_digest(plane: LocalControlPlane) -> None:
    response = plane.request("GET", "/specs/jobs")
    assert response.status == 200
    body = response.body
    assert body["name"] == "jobs"
    assert body["digest"] == plane.service.get_spec("jobs").digest
    assert body["states"]["PROVISION"]["tasks"] == ["work"]
    assert body["tasks"]["work"]["executor"] == "lambda"
    assert "base_dir" not in body


def test_unknown_spec_is_404(plane: LocalControlPlane) -> None:
    message = error_of(plane.request("GET", "/specs/nope"), 404, "spec_not_found")
    assert "jobs" in message  # says what is loaded
    error_of(plane.request("GET", "/specs/%F1%83%BC%B8"), 404, "spec_not_found")


# ---- machines: create -------------------------------------------------------------------


def test_create_answers_201_with_the_machine_json(plane: LocalControlPlane) -> None:
    mid = new_id()
    response = plane.request(
        "POST", "/machines", {"spec": "jobs", "id": mid, "metadata": {"owner": "bob", "n": 2}}
    )
    assert response.status == 201
    assert response.headers["Location"] == f"/machines/{mid}"
    body = response.body
    assert set(body) == MACHINE_FIELDS
    assert body["id"] == mid and body["spec"] == "jobs" and body["state"] == "INIT"
    assert body["epoch"] == 1 and body["previous_state"] is None
    assert body["status"] == "waiting"  # INIT has no tasks
    assert body["metadata"] == {"owner": "bob", "n": 2}
    assert plane.request("GET", f"/machines/{mid}").body == body


def test_create_without_id_generates_one(plane: LocalControlPlane) -> None:
    response = plane.request("POST", "/machines", {"spec": "jobs"})
    assert response.status == 201
    assert re.match(MACHINE_ID_PATTERN, response.body["id"])


def test_create_refusals(plane: LocalControlPlane) -> None:
    mid = new_id()
    assert plane.request("POST", "/machines", {"spec": "jobs", "id": mid}).status == 201
    error_of(plane.request("POST", "/machines", {"spec": "jobs", "id": mid}), 409, "machine_exists")
    message = error_of(plane.request("POST", "/machines", {"spec": "nope"}), 404, "unknown_spec")
    assert "jobs" in message
    message = error_of(
        plane.request("POST", "/machines", {"spec": "jobs", "metadata": {"a": {"b": 1}}}),
        400,
        "invalid_metadata",
    )
    assert "metadata.a" in message
    error_of(
        plane.request("POST", "/machines", {"spec": "jobs", "metadata": [1]}),
        400,
        "invalid_metadata",
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, ["body.spec", "required"]),
        ({"spec": 5}, ["body.spec"]),
        ({"spec": "jobs", "id": "../etc"}, ["body.id"]),
        ({"spec": "jobs", "id": "a" * 129}, ["body.id"]),
        ({"spec": "jobs", "spek": "x"}, ["body.spek", "accepted: spec, id, metadata"]),
        ([1, 2], ["body", "JSON object"]),
        ("text", ["body"]),
        (None, ["body", "required"]),
    ],
)
def test_create_invalid_request_names_each_field(
    plane: LocalControlPlane, body: Any, named: list[str]
) -> None:
    message = error_of(plane.request("POST", "/machines", body), 400, "invalid_request")
    for word in named:
        assert word in message, message


def test_invalid_request_names_every_field_at_once(plane: LocalControlPlane) -> None:
    message = error_of(
        plane.request("POST", "/machines", {"id": "-x", "extra": 1}), 400, "invalid_request"
    )
    for field in ("body.spec", "body.id", "body.extra"):
        assert field in message


# ---- machines: read ---------------------------------------------------------------------


def test_get_unknown_machine_is_404(plane: LocalControlPlane) -> None:
    error_of(plane.request("GET", "/machines/nobody-here"), 404, "machine_not_found")


@pytest.mark.parametrize("bad", ["-starts-with-dash", "a" * 129, "sp ace", "x%00y", "%C2%84"])
def test_invalid_machine_id_in_the_path_is_400(plane: LocalControlPlane, bad: str) -> None:
    error_of(plane.request("GET", f"/machines/{bad}"), 400, "invalid_request")


def test_list_machines_filters_and_pages(plane: LocalControlPlane) -> None:
    ids = sorted(new_id() for _ in range(3))
    for mid in ids:
        plane.request("POST", "/machines", {"spec": "demo", "id": mid})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = "spec=demo&state=INIT&limit=2" + (f"&next_token={token}" if token else "")
        response = plane.request("GET", f"/machines?{query}")
        assert response.status == 200
        assert set(response.body) == {"machines", "next_token"}
        assert len(response.body["machines"]) <= 2
        seen += [m["id"] for m in response.body["machines"]]
        assert all(m["spec"] == "demo" and m["state"] == "INIT" for m in response.body["machines"])
        pages += 1
        token = response.body["next_token"]
        if token is None:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    assert pages >= 2


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten", "next_token=garbage!"])
def test_list_machines_bad_query_is_400(plane: LocalControlPlane, query: str) -> None:
    message = error_of(plane.request("GET", f"/machines?{query}"), 400, "invalid_request")
    assert query.split("=", maxsplit=1)[0] in message


# ---- events, lifecycle, history, retry ----------------------------------------------------


def test_events_refusals_in_the_documented_order(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "jobs", "id": mid})
    send = lambda body: plane.request("POST", f"/machines/{mid}/events", body)  # noqa: E731
    # NEXT/FAILED are refused first, even where the state could not take them anyway
    message = error_of(send({"event": "NEXT"}), 400, "reserved_event")
    assert "LAUNCH" in message
    error_of(send({"event": "FAILED"}), 400, "reserved_event")
    message = error_of(send({"event": "LAUNCHH"}), 400, "unknown_event")
    assert "LAUNCH" in message
    message = error_of(
        plane.request("POST", "/machines/none-such/events", {"event": "LAUNCH"}),
        404,
        "machine_not_found",
    )
    machine = plane.request("GET", f"/machines/{mid}").body
    assert machine["epoch"] == 1 and machine["version"] == 1, "a refused event changed it"
    error_of(send({"event": "LAUNCH", "metadata": {"x": [1]}}), 400, "invalid_metadata")
    error_of(send({"evnt": "LAUNCH"}), 400, "invalid_request")


@pytest.mark.parametrize("key", ["stack_id", "statewright_state_key", "statewright_"])
def test_metadata_may_not_take_a_reserved_terraform_variable(
    plane: LocalControlPlane, key: str
) -> None:
    mid = new_id()
    message = error_of(
        plane.request("POST", "/machines", {"spec": "jobs", "id": mid, "metadata": {key: "x"}}),
        400,
        "invalid_metadata",
    )
    assert repr(key) in message and "reserved" in message and "rename" in message
    error_of(plane.request("GET", f"/machines/{mid}"), 404, "machine_not_found")
    plane.request("POST", "/machines", {"spec": "jobs", "id": mid, "metadata": {"Stack_ID": 1}})
    error_of(
        plane.request(
            "POST", f"/machines/{mid}/events", {"event": "LAUNCH", "metadata": {key: "x"}}
        ),
        400,
        "invalid_metadata",
    )
    machine = plane.request("GET", f"/machines/{mid}").body
    # Terraform's names are case-sensitive: Stack_ID is not stack_id.
    assert machine["metadata"] == {"Stack_ID": 1} and machine["version"] == 1


def test_event_not_accepted_says_what_is_accepted(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "demo", "id": mid})
    message = error_of(
        plane.request("POST", f"/machines/{mid}/events", {"event": "DESTROY"}),
        409,
        "event_not_accepted",
    )
    assert message == "DESTROY is not accepted in state INIT; accepted there: LAUNCH"


def test_demo_lifecycle_launch_run_destroy(plane: LocalControlPlane) -> None:
    mid = new_id()
    assert plane.request("POST", "/machines", {"spec": "demo", "id": mid}).status == 201
    response = plane.request(
        "POST", f"/machines/{mid}/events", {"event": "LAUNCH", "metadata": {"owner": "ana"}}
    )
    assert response.status == 202
    assert response.body["state"] == "PROVISION" and response.body["status"] == "running"
    assert response.body["epoch"] == 2 and response.body["previous_state"] == "INIT"
    assert set(response.body["tasks"]) == {"allocate", "infrastructure"}

    machine = plane.wait_until(mid, lambda m: m is not None and m.state == "RUN", 60)
    assert machine is not None and machine.status == "waiting" and machine.epoch == 3
    body = plane.request("GET", f"/machines/{mid}").body
    tasks = body["tasks"]
    assert all(set(t) == TASK_FIELDS for t in tasks.values())
    assert tasks["allocate"]["status"] == "succeeded"
    assert tasks["allocate"]["output"]["owner"] == "ana"
    assert tasks["allocate"]["state"] == "PROVISION" and tasks["allocate"]["epoch"] == 2
    assert tasks["infrastructure"]["output"]["name"] == f"preview-{mid}"
    assert tasks["infrastructure"]["output"]["owner"] == "ana"
    assert tasks["infrastructure"]["redacted_outputs"] == ["admin_token"]
    assert "admin_token" not in tasks["infrastructure"]["output"]

    response = plane.request("POST", f"/machines/{mid}/events", {"event": "DESTROY"})
    assert response.status == 202
    assert response.body["state"] == "TEARDOWN"
    assert plane.wait_until(mid, lambda m: m is None, 60) is None
    error_of(plane.request("GET", f"/machines/{mid}"), 404, "machine_not_found")
    error_of(plane.request("GET", f"/machines/{mid}/history"), 404, "machine_not_found")


def test_history_is_oldest_first_and_pages(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "jobs", "id": mid})
    plane.request("POST", f"/machines/{mid}/events", {"event": "LAUNCH"})
    plane.wait_until(mid, lambda m: m is not None and m.state == "RUN", 30)
    whole = plane.request("GET", f"/machines/{mid}/history").body
    assert set(whole) == {"entries", "next_token"} and whole["next_token"] is None
    kinds = [e["kind"] for e in whole["entries"]]
    assert kinds[0] == "created"
    for expected in ("event", "transition", "task_started", "task_finished"):
        assert expected in kinds
    seqs = [e["seq"] for e in whole["entries"]]
    assert seqs == sorted(seqs)
    paged: list[dict[str, Any]] = []
    token = None
    while True:
        suffix = f"&next_token={token}" if token else ""
        page = plane.request("GET", f"/machines/{mid}/history?limit=2{suffix}").body
        paged += page["entries"]
        token = page["next_token"]
        if not token:
            break
    assert paged == whole["entries"]
    error_of(plane.request("GET", f"/machines/{mid}/history?limit=1001"), 400, "invalid_request")


def test_send_with_spec_creates_the_machine_on_first_appearance(plane: LocalControlPlane) -> None:
    mid = new_id()
    response = plane.request("POST", f"/machines/{mid}/events", {"event": "LAUNCH", "spec": "jobs"})
    assert response.status == 202
    assert response.body["id"] == mid and response.body["state"] == "PROVISION"
    error_of(
        plane.request("POST", f"/machines/{new_id()}/events", {"event": "LAUNCH", "spec": "x"}),
        404,
        "unknown_spec",
    )


def test_failure_then_retry(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "jobs", "id": mid, "metadata": {"fail": True}})
    error_of(plane.request("POST", f"/machines/{mid}/retry"), 409, "nothing_to_retry")
    plane.request("POST", f"/machines/{mid}/events", {"event": "LAUNCH"})
    machine = plane.wait_until(mid, failed, 30)
    assert machine is not None
    assert machine.tasks["work"].error == "RuntimeError: asked to fail on attempt 1"
    # external events are still accepted in a failed state; this one fixes the cause
    touched = plane.request(
        "POST", f"/machines/{mid}/events", {"event": "TOUCH", "metadata": {"fail": False}}
    )
    assert touched.status == 202 and touched.body["status"] == "failed"
    retried = plane.request("POST", f"/machines/{mid}/retry")
    assert retried.status == 202
    assert retried.body["tasks"]["work"]["attempt"] == 2
    assert retried.body["epoch"] == machine.epoch
    done = plane.wait_until(mid, lambda m: m is not None and m.state == "RUN", 30)
    assert done is not None and done.tasks["work"].output == {"greeting": "hello", "attempt": 2}


# ---- idempotency --------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_answer(plane: LocalControlPlane) -> None:
    mid, key = new_id(), str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    first = plane.request("POST", "/machines", {"spec": "jobs", "id": mid}, headers)
    again = plane.request("POST", "/machines", {"spec": "jobs", "id": mid}, headers)
    assert first.status == again.status == 201
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    # without the key the same request is a new one
    error_of(plane.request("POST", "/machines", {"spec": "jobs", "id": mid}), 409, "machine_exists")
    # the key with another body
    message = error_of(
        plane.request("POST", "/machines", {"spec": "jobs", "id": new_id()}, headers),
        409,
        "idempotency_key_reused",
    )
    assert "Idempotency-Key" in message


def test_idempotency_on_events_applies_once(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "jobs", "id": mid})
    headers = {"idempotency-key": "touch-1"}  # header names are case-insensitive
    body = {"event": "TOUCH", "metadata": {"n": 1}}
    answers = [plane.request("POST", f"/machines/{mid}/events", body, headers) for _ in range(3)]
    assert [a.status for a in answers] == [202, 202, 202]
    assert answers[1].body == answers[0].body == answers[2].body
    history = plane.request("GET", f"/machines/{mid}/history").body["entries"]
    assert [e["event"] for e in history if e["kind"] == "event"] == ["TOUCH"]


def test_idempotency_replays_an_error_answer_too(plane: LocalControlPlane) -> None:
    headers = {"Idempotency-Key": "err-" + new_id()}
    body = {"event": "LAUNCH"}
    first = plane.request("POST", "/machines/not-there/events", body, headers)
    error_of(first, 404, "machine_not_found")
    plane.request("POST", "/machines", {"spec": "jobs", "id": "not-there"})
    again = plane.request("POST", "/machines/not-there/events", body, headers)
    assert again.status == 404 and again.body == first.body


def test_idempotency_key_retry_route(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "jobs", "id": mid})
    headers = {"Idempotency-Key": "r-" + mid}
    first = plane.request("POST", f"/machines/{mid}/retry", None, headers)
    again = plane.request("POST", f"/machines/{mid}/retry", None, headers)
    error_of(first, 409, "nothing_to_retry")
    assert again.body == first.body and again.headers.get("Idempotent-Replayed") == "true"


def test_an_unusable_idempotency_key_is_400(plane: LocalControlPlane) -> None:
    message = error_of(
        plane.request("POST", "/machines", {"spec": "jobs"}, {"Idempotency-Key": "k" * 300}),
        400,
        "invalid_request",
    )
    assert "dempotency" in message


# ---- hostile and broken requests ------------------------------------------------------------


def test_body_over_256_kib_is_413(plane: LocalControlPlane) -> None:
    body = {"spec": "jobs", "metadata": {"blob": "x" * (256 * 1024)}}
    message = error_of(plane.request("POST", "/machines", body), 413, "payload_too_large")
    assert "256 KiB" in message


def test_body_just_under_the_limit_is_read(plane: LocalControlPlane) -> None:
    # The most metadata a machine takes (16 KiB), then JSON whitespace up to 200 KiB.
    body = json.dumps({"spec": "jobs", "metadata": {"blob": "x" * (16 * 1024 - 11)}}).encode()
    assert plane.request("POST", "/machines", body + b" " * (200 * 1024 - len(body))).status == 201


def test_metadata_over_16_kib_is_refused_with_its_size(plane: LocalControlPlane) -> None:
    body = {"spec": "jobs", "metadata": {"blob": "x" * (200 * 1024)}}
    message = error_of(plane.request("POST", "/machines", body), 400, "metadata_too_large")
    assert "16384 bytes (16 KiB)" in message and "204811 bytes" in message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"spec": "jobs",', ["not valid JSON"]),
        (b'{"spec": "\xff\xfe"}', ["UTF-8"]),
        (b"[" * 100_000 + b"]" * 100_000, ["nests deeper"]),
        (b'{"spec": "jobs", "metadata": {"a": "x\\u0000y"}}', ["NUL"]),
        (b'{"spec": "jobs\x00"}', ["JSON"]),
        (b"\xef\xbb\xbf{}", ["JSON"]),
    ],
)
def test_broken_bodies_are_400_never_5xx(
    plane: LocalControlPlane, raw: bytes, words: list[str]
) -> None:
    message = error_of(plane.request("POST", "/machines", raw), 400, "invalid_request")
    for word in words:
        assert word in message


def test_base64_body_that_is_not_utf8_is_400(tmp_path: Path) -> None:
    event = proxy_event("POST", "/machines", [], b'{"spec":"x"}')
    event["body"] = base64.b64encode(b'{"spec":"\xff"}').decode()
    event["isBase64Encoded"] = True
    result = _api_over(SqliteStore(tmp_path / "db.sqlite")).resolve(event, None)
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["code"] == "invalid_request"


def test_any_content_type_is_read_as_json(plane: LocalControlPlane) -> None:
    """`curl -d` sends application/x-www-form-urlencoded; the API only speaks JSON."""
    response = plane.request(
        "POST",
        "/machines",
        {"spec": "jobs"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 201


def test_unknown_route_is_a_json_404(plane: LocalControlPlane) -> None:
    message = error_of(plane.request("GET", "/nothing/here"), 404, "not_found")
    assert "/openapi.json" in message
    error_of(plane.request("GET", "/machines/x/nothing"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/machines/x", "GET"),
        ("PUT", "/machines", "GET, POST"),
        ("GET", "/machines/x/events", "POST"),
        ("TRACE", "/specs", "GET"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_a_wrong_method_is_405_with_allow(
    plane: LocalControlPlane, method: str, path: str, allow: str
) -> None:
    response = plane.request(method, path)
    message = error_of(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow
    assert allow in message


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=st.sampled_from(["/machines", "/machines/x1/events", "/machines/x1/retry"]),
    body=st.one_of(
        st.binary(max_size=64),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["spec", "id", "event", "metadata", "x"]) | st.text(max_size=4),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_no_body_gets_a_5xx(plane: LocalControlPlane, path: str, body: bytes) -> None:
    response = plane.request("POST", path, body)
    assert response.status < 500, response.body
    if response.status >= 400:
        assert set(response.body) == {"error"}


# ---- 503 conflict ---------------------------------------------------------------------------


class AlwaysConflicting(SqliteStore):
    """Every update loses the race, as under a storm of writers."""

    def update(self, machine: Machine, expected_version: int, history: Any = ()) -> None:
        raise VersionConflict(machine.id)


def _api_over(store: SqliteStore) -> Any:
    catalog = SpecCatalog.from_folders([FIXTURES / "specs"])
    service = Service(store=store, bus=LocalBus(), executors={}, catalog=catalog)
    return build_api(service)


def test_conflict_past_the_deadline_is_503_with_retry_after(tmp_path: Path) -> None:
    store = AlwaysConflicting(tmp_path / "db.sqlite", deadline_seconds=0.2)
    api = _api_over(store)
    created = api.resolve(
        proxy_event("POST", "/machines", [], b'{"spec": "jobs", "id": "hot"}'), None
    )
    assert created["statusCode"] == 201
    result = api.resolve(
        proxy_event("POST", "/machines/hot/events", [], b'{"event": "TOUCH"}'), None
    )
    assert result["statusCode"] == 503
    assert json.loads(result["body"])["error"]["code"] == "conflict"
    headers = {k.lower(): v for k, v in result["multiValueHeaders"].items()}
    assert headers["retry-after"] == ["1"]
    store.close()
