"""Connection hygiene of a real `statewright serve`: malformed request lines and headers
get an HTTP/1.1 answer in the API's error shape, idle connections are bounded (a
thousand of them under a low file-descriptor limit), and a normal client is answered
throughout."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from statewright.local.control_plane import LocalControlPlane

from tests.integration.local.server import FIXTURES, Server
from tests.reliability.hostile.raw_http import RawAnswer, read_answer, send_bytes

HOST = b"Host: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("connections")) as running:
        yield running


def assert_normal_client_answered(server: Server) -> None:
    answer = server.request("GET", "/specs")
    assert answer.status == 200, answer


MALFORMED = {
    "garbage request line": (b"HELLO\r\n\r\n", 400, "invalid_request"),
    "HTTP/0.9 request": (b"GET /specs\r\n\r\n", 400, "invalid_request"),
    "two spaces": (b"GET  /specs HTTP/1.1\r\n" + HOST + b"\r\n", 400, "invalid_request"),
    "control character in the target": (
        b"GET /specs\x1b[2J HTTP/1.1\r\n" + HOST + b"\r\n",
        400,
        "invalid_request",
    ),
    "bad version": (b"GET /specs HTTP/1.1.1\r\n" + HOST + b"\r\n", 400, "invalid_request"),
    "HTTP/2.0": (b"GET /specs HTTP/2.0\r\n" + HOST + b"\r\n", 505, "http_version_not_supported"),
    "HTTP/1.2": (b"GET /specs HTTP/1.2\r\n" + HOST + b"\r\n", 505, "http_version_not_supported"),
    "URI too long": (
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        414,
        "uri_too_long",
    ),
    "too many headers": (
        b"GET /specs HTTP/1.1\r\n"
        + HOST
        + b"".join(b"X-%d: 1\r\n" % i for i in range(150))
        + b"\r\n",
        431,
        "headers_too_large",
    ),
    "header line too long": (
        b"GET /specs HTTP/1.1\r\n" + HOST + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
        "headers_too_large",
    ),
    "header without a colon": (
        b"GET /specs HTTP/1.1\r\n" + HOST + b"not a header\r\nX-After: 1\r\n\r\n",
        400,
        "invalid_request",
    ),
    "folded header": (
        b"GET /specs HTTP/1.1\r\n" + HOST + b"X-A: 1\r\n folded\r\n\r\n",
        400,
        "invalid_request",
    ),
    "space before the colon": (
        b"GET /specs HTTP/1.1\r\n" + HOST + b"X-A : 1\r\n\r\n",
        400,
        "invalid_request",
    ),
    "no Host": (b"GET /specs HTTP/1.1\r\n\r\n", 400, "invalid_request"),
    "two Hosts": (b"GET /specs HTTP/1.1\r\n" + HOST + HOST + b"\r\n", 400, "invalid_request"),
    "Content-Length with a sign": (
        b"POST /machines HTTP/1.1\r\n" + HOST + b"Content-Length: +10\r\n\r\n{}",
        400,
        "invalid_request",
    ),
    "Content-Length with an underscore": (
        b"POST /machines HTTP/1.1\r\n" + HOST + b"Content-Length: 1_0\r\n\r\n{}",
        400,
        "invalid_request",
    ),
    "Content-Length in another script's digits": (
        "POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u0661\u0660\r\n\r\n".encode(
            "utf-8"
        ),
        400,
        "invalid_request",
    ),
    "two different Content-Lengths": (
        b"POST /machines HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}",
        400,
        "invalid_request",
    ),
    "Transfer-Encoding": (
        b"POST /machines HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n",
        400,
        "invalid_request",
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_requests_get_an_http_1_1_json_error(server: Server, name: str) -> None:
    data, status, code = MALFORMED[name]
    answer = send_bytes(server.url, data)
    assert answer.status_line.startswith("HTTP/1.1 "), answer
    assert (answer.status, answer.code) == (status, code), answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert_normal_client_answered(server)


def test_two_equal_content_lengths_are_one(server: Server) -> None:
    body = b'{"spec": "jobs", "id": "twice"}'
    length = b"Content-Length: %d\r\n" % len(body)
    answer = send_bytes(
        server.url, b"POST /machines HTTP/1.1\r\n" + HOST + length + length + b"\r\n" + body
    )
    assert answer.status == 201, answer


def test_the_log_shows_hostile_request_lines_escaped(server: Server) -> None:
    send_bytes(server.url, b"GET /\x1b]8;;https://x\x07y\x1b[2J HTTP/1.1\r\n" + HOST + b"\r\n")
    log = server.log.read_bytes()
    assert b"\x1b" not in log
    assert b"\x07" not in log
    assert b"\\x1b]8;;https://x\\x07y\\x1b[2J" in log


def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body(
    server: Server,
) -> None:
    """What curl does with a body over 1 KiB: the headers, a wait for ``100 Continue``,
    then the body."""
    body = b'{"spec": "jobs", "id": "expected", "metadata": {"pad": "%s"}}' % (b"x" * 2000)
    head = (
        b"POST /machines HTTP/1.1\r\n"
        + HOST
        + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with connect(server.url) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(1)
            assert chunk, f"closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        sock.sendall(body)
        answer = read_answer(sock)
    assert answer.status == 201, answer
    assert answer.body["metadata"] == {"pad": "x" * 2000}


# ---- many connections ---------------------------------------------------------------------

FD_LIMIT = 400  # the 256 connections, the database, the logs and some room


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(url: str) -> socket.socket:
    split = urlsplit(url)
    return socket.create_connection((split.hostname, split.port), timeout=10)


def test_a_thousand_idle_connections_are_bounded(tmp_path: Path) -> None:
    with Server(tmp_path, specs=[FIXTURES / "specs"], fd_limit=FD_LIMIT) as server:
        assert server.process is not None
        pid = server.process.pid
        idle: list[socket.socket] = []
        refused: list[RawAnswer] = []
        most_fds = 0
        try:
            for n in range(1000):
                sock = connect(server.url)
                idle.append(sock)
                if n % 50 == 0:
                    most_fds = max(most_fds, open_fds(pid))
            # Beyond 256 open connections, each new one gets an immediate 503 and is
            # closed: read those answers (the first 256 hear nothing yet).
            for sock in idle[256:]:
                refused.append(read_answer(sock))
            assert all(a.status == 503 for a in refused), refused[:3]
            assert {a.code for a in refused} == {"too_many_connections"}
            assert refused[0].headers["retry-after"] == "1"
            most_fds = max(most_fds, open_fds(pid))
            # A client meanwhile gets an answer at once, not a hang or a reset.
            busy = send_bytes(server.url, b"GET /specs HTTP/1.1\r\n" + HOST + b"\r\n", timeout=5)
            assert busy.status == 503, busy
            assert server.process.poll() is None
        finally:
            for sock in idle:
                sock.close()
        assert most_fds < FD_LIMIT
        # Once the idle clients leave, normal service.
        deadline = time.monotonic() + 10
        while server.request("GET", "/specs").status != 200:
            assert time.monotonic() < deadline, "the server never came back"
            time.sleep(0.1)
        assert "Traceback" not in server.log.read_text()


def test_idle_and_stalled_connections_are_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    with LocalControlPlane(specs_dirs=[FIXTURES / "specs"], data_dir=tmp_path) as plane:
        url = plane.serve(port=0, idle_timeout=0.5)
        quiet = connect(url)
        stalled = connect(url)
        stalled.sendall(b"POST /machines HTTP/1.1\r\n" + HOST + b"Content-Length: 50\r\n\r\n{")
        started = time.monotonic()
        for sock in (quiet, stalled):
            with sock, contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""  # closed by the server, nothing answered
        assert time.monotonic() - started < 5
        # Between requests too: a keep-alive connection left alone is closed.
        with connect(url) as kept:
            kept.sendall(b"GET /specs HTTP/1.1\r\n" + HOST + b"\r\n")
            assert read_answer(kept).status == 200
            time.sleep(1.0)
            with contextlib.suppress(ConnectionResetError):
                assert kept.recv(100) == b""
        assert plane.request("GET", "/specs").status == 200
