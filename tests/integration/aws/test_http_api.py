"""The dispatcher behind an HTTP API (cdk.json ``api.type: http``): API Gateway's payload
format 2.0 events, resolved by Powertools' HTTP resolver, get the same answers as the
REST API's proxy events — statuses, bodies, the headers that matter — and the caller's
principal is read from where each API puts it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.aws.deployment import (
    ACCOUNT,
    API_TYPES,
    Deployment,
    answer_headers,
    http_api_event,
    lambda_context,
    rest_api_event,
    use_api,
)

ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
HEADERS_THAT_MATTER = ("content-type", "location", "retry-after", "allow", "idempotent-replayed")
# What differs between two runs of the same requests: generated ids and times.
_VOLATILE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{12}|\b[A-Za-z0-9_=-]{40,}\b"
)


@pytest.fixture(params=API_TYPES)
def dep(
    request: pytest.FixtureRequest, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> Deployment:
    return use_api(deployment, monkeypatch, request.param)


# (the status both APIs answer, method, path, body, headers, query)
Request = tuple[int, str, str, Any, dict[str, str], dict[str, str] | None]


def _requests(prefix: str) -> list[Request]:
    """One conversation with the API: creates, events, reads, a listing page, and
    refusals of every kind (the body, the route, the method, the machine's state)."""
    machine = f"{prefix}-a"
    events = f"/machines/{machine}/events"
    once = {"Idempotency-Key": f"{prefix}-key"}  # the second answer is the first replayed
    return [
        (
            201,
            "POST",
            "/machines",
            {"spec": "preview-env", "id": machine, "metadata": {}},
            {},
            None,
        ),
        (201, "POST", "/machines", {"spec": "preview-env", "id": f"{prefix}-b"}, {}, None),
        (201, "POST", "/machines", {"spec": "preview-env", "id": f"{prefix}-c"}, {}, None),
        (409, "POST", "/machines", {"spec": "preview-env", "id": machine}, {}, None),
        (400, "POST", "/machines", {"id": "x"}, {}, None),  # no spec: named
        (404, "POST", "/machines", {"spec": "no-such-spec"}, {}, None),
        (202, "POST", events, {"event": "LAUNCH"}, {}, None),
        (400, "POST", events, {"event": "NO_SUCH"}, {}, None),
        (400, "POST", events, {"event": "NEXT"}, {}, None),  # reserved
        (200, "GET", f"/machines/{machine}", None, {}, None),
        (404, "GET", "/machines/nobody-here", None, {}, None),
        (200, "GET", "/machines", None, {}, {"spec": "preview-env", "limit": "2"}),
        (400, "GET", "/machines", None, {}, {"limit": "0"}),
        (400, "GET", "/machines", None, {}, {"next_token": "not-a-token"}),
        (200, "GET", f"/machines/{machine}/history", None, {}, None),
        (409, "POST", f"/machines/{machine}/retry", None, {}, None),  # nothing to retry
        (201, "POST", "/machines", {"spec": "preview-env", "id": f"{prefix}-d"}, once, None),
        (201, "POST", "/machines", {"spec": "preview-env", "id": f"{prefix}-d"}, once, None),
        (409, "POST", "/machines", {"spec": "preview-env", "id": f"{prefix}-e"}, once, None),
        (400, "POST", "/machines", {"spec": "preview-env"}, {"Idempotency-Key": "\u00e9"}, None),
        (405, "DELETE", f"/machines/{machine}", None, {}, None),  # with Allow
        (404, "GET", "/no/such/route", None, {}, None),
        (200, "GET", "/specs/preview-env", None, {}, None),
        (200, "GET", "/machines/", None, {}, {"spec": "preview-env", "limit": "1"}),
        (200, "GET", f"/machines/{machine}/", None, {}, None),  # a trailing "/" is the same
        (404, "GET", "//machines", None, {}, None),
        (200, "GET", "/openapi.json", None, {}, None),  # the same document either way
    ]


def _normalized(response: dict[str, Any], prefix: str) -> tuple[int, Any, dict[str, str]]:
    text = _VOLATILE.sub("<v>", response["body"].replace(prefix, "<id>"))
    headers = answer_headers(response)
    kept = {
        k: _VOLATILE.sub("<v>", v.replace(prefix, "<id>"))
        for k, v in headers.items()
        if k in HEADERS_THAT_MATTER
    }
    return response["statusCode"], json.loads(text), kept


def test_both_apis_answer_the_same_conversation_identically(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, list[tuple[int, Any, dict[str, str]]]] = {}
    for api_type in API_TYPES:
        dep = use_api(deployment, monkeypatch, api_type)
        prefix = f"same-{api_type}"
        answers[api_type] = [
            _normalized(dep.api_response(*request, principal=ALICE), prefix)
            for _, *request in _requests(prefix)
        ]
    expected = [status for status, *_ in _requests("")]
    assert [status for status, _, _ in answers["http"]] == expected
    for rest, http in zip(answers["rest"], answers["http"], strict=True):
        assert http == rest


def test_a_created_machine_answers_with_its_location(dep: Deployment) -> None:
    response = dep.api_response("POST", "/machines", {"spec": "preview-env", "id": "pr-1"})
    assert response["statusCode"] == 201
    assert answer_headers(response)["location"] == "/machines/pr-1"
    assert answer_headers(response)["content-type"] == "application/json"
    assert json.loads(response["body"])["state"] == "INIT"


def test_the_signer_is_the_actor_of_the_history(dep: Deployment) -> None:
    assert (
        dep.api("POST", "/machines", {"spec": "preview-env", "id": "pr-2"}, principal=ALICE)[0]
        == 201
    )
    assert dep.api("POST", "/machines/pr-2/events", {"event": "LAUNCH"}, principal=ALICE)[0] == 202
    status, page = dep.api("GET", "/machines/pr-2/history")
    assert status == 200
    assert [e["actor"] for e in page["entries"][:2]] == [ALICE, ALICE]


def test_listing_pages_through_every_machine(dep: Deployment) -> None:
    for n in range(5):
        assert dep.api("POST", "/machines", {"spec": "preview-env", "id": f"page-{n}"})[0] == 201
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = {"limit": "2", **({"next_token": token} if token else {})}
        status, page = dep.api("GET", "/machines", query=query)
        assert status == 200, page
        assert len(page["machines"]) <= 2
        seen += [m["id"] for m in page["machines"]]
        pages += 1
        token = page["next_token"]
        if token is None:
            break
    assert sorted(seen) == [f"page-{n}" for n in range(5)]
    assert pages == 3


@pytest.mark.parametrize(
    ("body", "base64_encoded", "code"),
    [
        ("{not json", False, "invalid_request"),
        ("[" * 40 + "]" * 40, False, "invalid_request"),
        ('{"spec": "preview-env", "id": "a\\u0000b"}', False, "invalid_request"),
        ('{"spec": "preview-env", "id": "x", "extra": 1}', False, "invalid_request"),
        ("x" * (256 * 1024 + 1), False, "payload_too_large"),
        # a binary body arrives base64-encoded and flagged: not UTF-8, so not JSON
        (base64.b64encode(b'{"spec": "\xff"}').decode(), True, "invalid_request"),
        ("not base64!", True, "invalid_request"),
    ],
)
def test_bad_bodies_stay_4xx_in_the_error_shape(
    dep: Deployment, body: str, base64_encoded: bool, code: str
) -> None:
    build = http_api_event if dep.api_type == "http" else rest_api_event
    event = build("POST", "/machines", None, {}, None, ALICE)
    event["body"] = body
    event["isBase64Encoded"] = base64_encoded
    response = dep.dispatcher.handler(event, lambda_context("dispatcher"))
    assert 400 <= response["statusCode"] < 500
    error = json.loads(response["body"])["error"]
    assert error["code"] == code
    assert error["message"]
    assert answer_headers(response)["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("configured", "sent", "build"),
    [("rest", "http", http_api_event), ("http", "rest", rest_api_event)],
)
def test_a_request_from_the_other_api_is_a_500_naming_the_setting(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    configured: str,
    sent: str,
    build: Callable[..., dict[str, Any]],
) -> None:
    use_api(deployment, monkeypatch, configured)
    event = build("GET", "/specs", None, {}, None, ALICE)
    response = deployment.dispatcher.handler(event, lambda_context("dispatcher"))
    assert response["statusCode"] == 500
    error = json.loads(response["body"])["error"]
    assert error["code"] == "misconfigured"
    assert "STATEWRIGHT_API_TYPE" in error["message"]
    assert ("multiValueHeaders" in response) == (sent == "rest")
