"""The local HTTP server in front of a recording resolver: the caller it names in the
proxy event (where API Gateway puts the IAM principal) and the console's static files,
served only from inside their folder."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from statewright.local.console_files import ConsoleFiles
from statewright.local.server import ApiServer
from statewright.local.trust import Token, TrustPolicy

from tests.reliability.hostile.raw_http import RawAnswer, raw_request

TOKEN = "token-of-alice-0123456789"


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


@contextlib.contextmanager
def running(server: ApiServer) -> Iterator[ApiServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def console_root(tmp_path: Path) -> Path:
    root = tmp_path / "console"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>console</title>")
    (root / "assets" / "app.js").write_text("console.log('hi')")
    (root / "assets" / "style.css").write_text("body{}")
    (root / ".hidden").write_text("no")
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    return root


def test_the_caller_is_local_without_tokens() -> None:
    recorder = Recorder()
    with running(ApiServer(("127.0.0.1", 0), recorder)) as server:
        assert raw_request(server.url, "GET", "/machines").status == 200
    identity = recorder.events[0]["requestContext"]["identity"]
    assert identity["userArn"] == "local"
    assert identity["sourceIp"] == "127.0.0.1"


def test_the_caller_is_the_tokens_name() -> None:
    recorder = Recorder()
    policy = TrustPolicy([Token("alice", TOKEN.encode()), Token("bob", b"x" * 20)])
    with running(ApiServer(("127.0.0.1", 0), recorder, policy=policy)) as server:
        answer = raw_request(
            server.url, "GET", "/machines", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status == 200
        refused = raw_request(server.url, "GET", "/machines")
        assert (refused.status, refused.code) == (401, "unauthenticated")
    assert len(recorder.events) == 1  # the refused request never reached the API
    assert recorder.events[0]["requestContext"]["identity"]["userArn"] == "alice"


def get(url: str, target: str, method: str = "GET") -> RawAnswer:
    return raw_request(url, method, target)


def test_console_files_are_served_from_their_folder_only(console_root: Path) -> None:
    recorder = Recorder()
    console = ConsoleFiles(console_root)
    policy = TrustPolicy([Token("alice", TOKEN.encode())])  # files need no token
    server = ApiServer(("127.0.0.1", 0), recorder, policy=policy, console=console)
    with running(server):
        url = server.url
        index = get(url, "/console/")
        assert index.status == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert "<title>console</title>" in index.body
        assert index.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in index.headers["content-security-policy"]
        script = get(url, "/console/assets/app.js?v=1")
        assert (script.status, script.headers["content-type"]) == (
            200,
            "text/javascript; charset=utf-8",
        )
        assert get(url, "/console/assets/style.css").headers["content-type"].startswith("text/css")
        assert get(url, "/console/assets/").status == 404  # a folder without index.html
        redirect = get(url, "/console")
        assert (redirect.status, redirect.headers["location"]) == (308, "/console/")
        head = get(url, "/console/index.html", "HEAD")
        assert head.status == 200
        post = get(url, "/console/index.html", "POST")
        assert (post.status, post.code) == (405, "method_not_allowed")
        for target in (
            "/console/../secret.txt",
            "/console/%2e%2e/secret.txt",
            "/console/assets/..%2f..%2fsecret.txt",
            "/console/.hidden",
            "/console/link.txt",
            "/console/assets%5c..%5c..%5csecret.txt",
            "/console/missing.js",
            "/console/%ff",
        ):
            answer = get(url, target)
            assert (answer.status, answer.code) == (404, "not_found"), target
            assert "outside" not in str(answer.body)
    assert recorder.events == []  # none of it reached the API


def test_without_a_console_folder_the_path_is_a_json_404(tmp_path: Path) -> None:
    console = ConsoleFiles(tmp_path / "none")
    with running(ApiServer(("127.0.0.1", 0), Recorder(), console=console)) as server:
        answer = get(server.url, "/console/")
        assert (answer.status, answer.code) == (404, "not_found")
        assert "no console" in answer.body["error"]["message"]
