"""The TTL parts of the HTTP API (docs/api.md): ``ttl`` on create and on create-on-first-
event, ``POST /machines/{id}/ttl``, and ``expires_at``/``expired`` in the Machine JSON,
through LocalControlPlane.request (the same proxy events as the HTTP server)."""

from __future__ import annotations

from datetime import UTC, datetime

from statewright.local.control_plane import LocalControlPlane

from tests.integration.api.test_api import error_of, new_id


def seconds_from_now(stamp: str) -> float:
    return (datetime.fromisoformat(stamp) - datetime.now(UTC)).total_seconds()


def test_create_takes_a_ttl_and_the_machine_json_shows_when_it_expires(
    plane: LocalControlPlane,
) -> None:
    mid = new_id()
    body = plane.request("POST", "/machines", {"spec": "ttl", "id": mid, "ttl": "30m"}).body
    assert body["expired"] is False
    assert 29 * 60 < seconds_from_now(body["expires_at"]) <= 30 * 60
    default = plane.request("POST", "/machines", {"spec": "ttl"}).body
    assert 0 < seconds_from_now(default["expires_at"]) <= 3  # the spec's ttl: 3s
    plain = plane.request("POST", "/machines", {"spec": "jobs"}).body
    assert (plain["expires_at"], plain["expired"]) == (None, False)


def test_a_bad_ttl_is_400_naming_the_field_and_what_is_accepted(plane: LocalControlPlane) -> None:
    cases = [
        ({"spec": "ttl", "ttl": "3 days"}, "ttl: `3 days` is not a duration"),
        ({"spec": "ttl", "ttl": "3600"}, "a bare number has no unit: write `3600s`"),
        ({"spec": "ttl", "ttl": "2h"}, "ttl 2h is longer than spec ttl allows: its max_ttl is 1h"),
        ({"spec": "jobs", "ttl": "1h"}, "machines of spec jobs do not expire"),
        ({"spec": "ttl", "ttl": 60}, "body.ttl"),
    ]
    for body, expected in cases:
        mid = new_id()
        message = error_of(
            plane.request("POST", "/machines", {**body, "id": mid}), 400, "invalid_request"
        )
        assert expected in message, (body, message)
        assert plane.request("GET", f"/machines/{mid}").status == 404  # nothing stored


def test_create_on_first_event_takes_a_ttl(plane: LocalControlPlane) -> None:
    mid = new_id()
    answer = plane.request(
        "POST", f"/machines/{mid}/events", {"event": "LAUNCH", "spec": "ttl", "ttl": "10m"}
    )
    assert answer.status == 202, answer.body
    assert 9 * 60 < seconds_from_now(answer.body["expires_at"]) <= 10 * 60


def test_post_ttl_sets_the_ttl_from_now_and_answers_200_with_the_machine(
    plane: LocalControlPlane,
) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "ttl", "id": mid})
    answer = plane.request("POST", f"/machines/{mid}/ttl", {"ttl": "45m"})
    assert answer.status == 200, answer.body
    assert 44 * 60 < seconds_from_now(answer.body["expires_at"]) <= 45 * 60
    assert answer.body["expired"] is False
    entries = plane.request("GET", f"/machines/{mid}/history").body["entries"]
    assert [(e["kind"], e["actor"], e["source"]) for e in entries][-1] == (
        "ttl_changed",
        "local",
        "api",
    )
    assert entries[-1]["expires_at"] == answer.body["expires_at"]


def test_post_ttl_refusals(plane: LocalControlPlane) -> None:
    mid = new_id()
    plane.request("POST", "/machines", {"spec": "ttl", "id": mid})
    before = plane.request("GET", f"/machines/{mid}").body
    too_long = plane.request("POST", f"/machines/{mid}/ttl", {"ttl": "1h1s"})
    assert "its max_ttl is 1h" in error_of(too_long, 400, "invalid_request")
    assert "is required" in error_of(
        plane.request("POST", f"/machines/{mid}/ttl", {}), 400, "invalid_request"
    )
    extra = plane.request("POST", f"/machines/{mid}/ttl", {"ttl": "1m", "until": "soon"})
    assert "(accepted: ttl)" in error_of(extra, 400, "invalid_request")
    assert "`tomorrow` is not a duration" in error_of(
        plane.request("POST", f"/machines/{mid}/ttl", {"ttl": "tomorrow"}), 400, "invalid_request"
    )
    assert plane.request("GET", f"/machines/{mid}").body == before  # never silently shortened
    error_of(
        plane.request("POST", f"/machines/{new_id()}/ttl", {"ttl": "1m"}), 404, "machine_not_found"
    )
    plain = new_id()
    plane.request("POST", "/machines", {"spec": "jobs", "id": plain})
    assert "do not expire" in error_of(
        plane.request("POST", f"/machines/{plain}/ttl", {"ttl": "1m"}), 400, "invalid_request"
    )


def test_the_ttl_route_is_in_the_openapi_document(plane: LocalControlPlane) -> None:
    document = plane.request("GET", "/openapi.json").body
    operation = document["paths"]["/machines/{machine_id}/ttl"]["post"]
    assert set(operation["responses"]) == {"200", "400", "403", "404", "409", "413", "503"}
    schemas = document["components"]["schemas"]
    assert schemas["SetTtlRequest"]["required"] == ["ttl"]
    assert {"expires_at", "expired"} <= set(schemas["MachineOut"]["properties"])
