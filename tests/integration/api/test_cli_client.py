"""The CLI's API client: SigV4 signing for API Gateway endpoints, plain HTTP otherwise,
and the machines CLI's metadata parsing."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import pytest
import typer
from statewright.cli.api_client import ApiClient, ApiError
from statewright.cli.machines import parse_metadata

GATEWAY = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


class FakeResponse(io.BytesIO):
    status = 200

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[urllib.request.Request]:
    requests: list[urllib.request.Request] = []

    def urlopen(req: urllib.request.Request, timeout: float) -> FakeResponse:
        requests.append(req)
        return FakeResponse(json.dumps({"ok": True}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requests


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def test_api_gateway_requests_are_sigv4_signed(sent: list, aws_env: None) -> None:
    client = ApiClient(GATEWAY)
    assert client.signed
    assert client.request("POST", "/machines", {"spec": "demo"}) == {"ok": True}
    req = sent[0]
    assert req.full_url == GATEWAY + "/machines"
    headers = {k.lower(): v for k, v in req.header_items()}
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in auth
    assert headers["x-amz-security-token"] == "token-1"
    assert "x-amz-date" in headers
    assert req.data == json.dumps({"spec": "demo"}).encode()


def test_local_requests_are_not_signed(sent: list, aws_env: None) -> None:
    client = ApiClient("http://127.0.0.1:8080")
    assert not client.signed
    client.request("GET", "/machines", query={"spec": "demo", "next_token": None})
    req = sent[0]
    assert req.full_url == "http://127.0.0.1:8080/machines?spec=demo"
    assert "authorization" not in {k.lower() for k, _ in req.header_items()}


def test_signing_without_credentials_is_a_clear_error(
    sent: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    with pytest.raises(ApiError) as raised:
        ApiClient(GATEWAY).request("GET", "/specs")
    assert raised.value.code == "no_credentials"
    assert sent == []


def test_an_unknown_profile_is_a_clear_error(
    sent: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ApiError) as raised:
        ApiClient(GATEWAY).request("GET", "/specs")
    assert raised.value.code == "no_credentials" and "nobody" in raised.value.message


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    with pytest.raises(ApiError, match="not an http"):
        ApiClient("file:///etc/passwd")


def test_metadata_values_are_json_scalars_or_text() -> None:
    assert parse_metadata(
        ["n=3", "f=1.5", "ok=true", "none=null", "name=alice", 'quoted="42"', "eq=a=b", "o={}"]
    ) == {
        "n": 3,
        "f": 1.5,
        "ok": True,
        "none": None,
        "name": "alice",
        "quoted": "42",
        "eq": "a=b",
        "o": "{}",
    }
    assert parse_metadata(None) is None
    with pytest.raises(typer.BadParameter):
        parse_metadata(["novalue"])
