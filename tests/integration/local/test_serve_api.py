"""The HTTP API of a real `statewright serve` process (real SQLite file, real terraform):
the demo's lifecycle, every error code of docs/api.md, idempotency and size limits."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.local.server import Server, gone, in_state

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("serve")) as s:
        yield s


def new_id() -> str:
    return "it-" + uuid.uuid4().hex[:10]


def assert_error(answer, status: int, code: str) -> str:
    assert answer.status == status, answer
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.body["error"]["code"] == code, answer.body
    return answer.body["error"]["message"]


def test_serve_binds_loopback_and_serves_the_specs(server: Server) -> None:
    assert urlsplit(server.url).hostname == "127.0.0.1"
    names = [s["name"] for s in server.request("GET", "/specs").body["specs"]]
    assert {"demo", "jobs"} <= set(names)


def test_demo_launch_provisions_and_destroy_tears_down(server: Server) -> None:
    mid = new_id()
    created = server.request("POST", "/machines", {"spec": "demo", "id": mid})
    assert created.status == 201 and created.body["state"] == "INIT"

    launched = server.request(
        "POST", f"/machines/{mid}/events", {"event": "LAUNCH", "metadata": {"owner": "lee"}}
    )
    assert launched.status == 202
    assert launched.body["state"] == "PROVISION" and launched.body["epoch"] == 2

    running = server.wait_for(mid, in_state("RUN"))
    assert running is not None
    assert running["metadata"] == {"owner": "lee"}
    infra = running["tasks"]["infrastructure"]
    assert infra["executor"] == "terraform" and infra["status"] == "succeeded"
    assert infra["output"]["instances"] == [f"preview-{mid}-0", f"preview-{mid}-1"]
    assert infra["output"]["owner"] == "lee"
    allocate = running["tasks"]["allocate"]
    assert allocate["output"]["url"] == f"https://{mid}.preview.example.test"
    state_files = list((server.data_dir / "terraform" / mid).glob("*/terraform.tfstate"))
    assert len(state_files) == 1

    destroyed = server.request("POST", f"/machines/{mid}/events", {"event": "DESTROY"})
    assert destroyed.status == 202 and destroyed.body["state"] == "TEARDOWN"
    server.wait_for(mid, gone)
    assert_error(server.request("GET", f"/machines/{mid}"), 404, "machine_not_found")
    assert '"outputs": {}' in state_files[0].read_text()


def test_every_error_code(server: Server) -> None:
    mid = new_id()
    assert server.request("POST", "/machines", {"spec": "demo", "id": mid}).status == 201
    events = f"/machines/{mid}/events"

    assert "body.spec" in assert_error(
        server.request("POST", "/machines", {"id": "x"}), 400, "invalid_request"
    )
    assert_error(
        server.request("POST", "/machines", {"spec": "demo", "metadata": {"n": {"x": 1}}}),
        400,
        "invalid_metadata",
    )
    assert_error(server.request("POST", events, {"event": "NEXT"}), 400, "reserved_event")
    assert_error(server.request("POST", events, {"event": "LAUNCHED"}), 400, "unknown_event")
    assert_error(server.request("POST", "/machines", {"spec": "nope"}), 404, "unknown_spec")
    assert_error(server.request("GET", "/machines/no-such"), 404, "machine_not_found")
    assert_error(
        server.request("POST", "/machines/no-such/events", {"event": "LAUNCH"}),
        404,
        "machine_not_found",
    )
    assert_error(server.request("GET", "/specs/nope"), 404, "spec_not_found")
    assert_error(
        server.request("POST", "/machines", {"spec": "demo", "id": mid}), 409, "machine_exists"
    )
    assert_error(server.request("POST", events, {"event": "DESTROY"}), 409, "event_not_accepted")
    assert_error(server.request("POST", f"/machines/{mid}/retry"), 409, "nothing_to_retry")
    key = {"Idempotency-Key": new_id()}
    assert server.request("POST", "/machines", {"spec": "demo"}, key).status == 201
    assert_error(
        server.request("POST", "/machines", {"spec": "jobs"}, key), 409, "idempotency_key_reused"
    )
    assert_error(
        server.request("POST", "/machines", raw=b"x" * (256 * 1024 + 1)), 413, "payload_too_large"
    )
    assert_error(server.request("GET", "/machines?limit=5000"), 400, "invalid_request")
    assert_error(server.request("GET", "/machines/bad%2Fid"), 400, "invalid_request")


def test_idempotency_key_replays_over_http(server: Server) -> None:
    mid = new_id()
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"event": "LAUNCH", "spec": "jobs"}
    first = server.request("POST", f"/machines/{mid}/events", body, headers)
    second = server.request("POST", f"/machines/{mid}/events", body, headers)
    assert first.status == second.status == 202
    assert second.body == first.body
    assert second.headers.get("Idempotent-Replayed") == "true"
    server.wait_for(mid, in_state("RUN"))
    entries = server.request("GET", f"/machines/{mid}/history").body["entries"]
    assert [e["event"] for e in entries if e["kind"] == "event"] == ["LAUNCH", "NEXT"]


def raw_http(server: Server, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (what urllib would refuse to send) and read the answer."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_oversized_body_is_refused_without_being_read(server: Server) -> None:
    """The server answers 413 from Content-Length alone and closes the connection."""
    status, body = raw_http(
        server,
        b"POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\n\r\n{",
    )
    assert status == 413
    assert b"payload_too_large" in body


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (
            b"POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13\r\n\r\n"
            b'{"spec":"\xff\xfe"}',
            400,
        ),
        (b"POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n", 400),
        (
            b"POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n",
            400,
        ),
        (b"GET /machines/%FF HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
        (b"GET /machines?spec=%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ],
)
def test_malformed_http_is_400(server: Server, request_bytes: bytes, code: int) -> None:
    status, body = raw_http(server, request_bytes)
    assert status == code, body
    assert b'"invalid_request"' in body


def test_head_is_get_without_a_body(server: Server) -> None:
    answer = server.request("HEAD", "/specs")
    assert answer.status == 200 and answer.body is None
    assert int(answer.headers["Content-Length"]) > 0


def test_the_server_still_answers_after_hostile_requests(server: Server, tmp_path: Path) -> None:
    assert server.request("GET", "/specs").status == 200
    assert server.process is not None and server.process.poll() is None
