"""Hostile requests against a real `statewright serve`: oversized and lying bodies,
broken UTF-8, NULs and lone surrogates, deep JSON, ids and spec names with path
characters, odd methods and headers. Each is refused with the API's error shape and the
code that names the problem; none is a 5xx; the server keeps serving and logs no trace."""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.integration.local.server import Server
from tests.reliability.figures import record
from tests.reliability.hostile.raw_http import RawAnswer, raw_request

LIMIT = 256 * 1024


@dataclass
class Case:
    name: str
    method: str
    target: bytes | str
    status: int
    code: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None


def _create(**fields: object) -> bytes:
    return json.dumps({"spec": "jobs", **fields}).encode()


# {"pad":"..."} as compact JSON is 10 bytes plus the value: metadata of exactly 16 KiB.
FULL_PAD = 16 * 1024 - 10


def _exactly(size: int) -> bytes:
    """A valid create body of exactly ``size`` bytes: the most metadata a machine takes,
    then JSON whitespace."""
    body = _create(metadata={"pad": "x" * FULL_PAD})
    return body + b" " * (size - len(body))


CASES = [
    # sizes
    Case("one byte over 256 KiB", "POST", "/machines", 413, "payload_too_large",
         body=b"x" * (LIMIT + 1)),
    Case("4 MiB", "POST", "/machines", 413, "payload_too_large", body=b"{" * (4 << 20)),
    Case("metadata of 200 KB", "POST", "/machines", 400, "metadata_too_large",
         body=_create(metadata={"pad": "x" * 200_000})),
    Case("a Content-Length of 10 GiB, no body", "POST", "/machines", 413,
         "payload_too_large", content_length=10 << 30),
    Case("a negative Content-Length", "POST", "/machines", 400, "invalid_request",
         content_length=-5),
    Case("chunked", "POST", "/machines", 400, "invalid_request",
         headers={"Transfer-Encoding": "chunked"}, body=b"5\r\nhello\r\n0\r\n\r\n"),
    # encodings and characters
    Case("broken UTF-8 in the body", "POST", "/machines", 400, "invalid_request",
         body=b'{"spec": "jobs", "id": "\xff\xfe"}'),
    Case("an overlong UTF-8 encoding", "POST", "/machines", 400, "invalid_request",
         body=b'{"spec": "jobs\xc0\xaf"}'),
    Case("a raw NUL byte", "POST", "/machines", 400, "invalid_request",
         body=b'{"spec": "jobs\x00"}'),
    Case("an escaped NUL in a value", "POST", "/machines", 400, "invalid_request",
         body=_create(metadata={"a": "x\x00y"})),
    Case("an escaped NUL in a key", "POST", "/machines", 400, "invalid_request",
         body=_create(metadata={"\x00": 1})),
    Case("a lone surrogate in a metadata value", "POST", "/machines", 400, "invalid_request",
         body=b'{"spec": "jobs", "metadata": {"a": "\\ud800"}}'),
    Case("a lone surrogate in a metadata key", "POST", "/machines", 400, "invalid_request",
         body=b'{"spec": "jobs", "metadata": {"\\udfff": "x"}}'),
    Case("a lone surrogate as the event", "POST", "/machines/x/events", 400,
         "invalid_request", body=b'{"spec": "jobs", "event": "\\udc00"}'),
    Case("NUL in the path", "GET", "/machines/a%00b", 400, "invalid_request"),
    Case("NUL in the query", "GET", "/machines?spec=%00", 400, "invalid_request"),
    Case("broken UTF-8 in the path", "GET", "/machines/%ff%fe", 400, "invalid_request"),
    Case("a UTF-8 surrogate in the query", "GET", "/machines?state=%ED%A0%80", 400,
         "invalid_request"),
    # JSON shapes
    Case("JSON nested 100 000 deep", "POST", "/machines", 400, "invalid_request",
         body=b"[" * 100_000 + b"]" * 100_000),
    Case("metadata nested 40 deep", "POST", "/machines", 400, "invalid_request",
         body=_create(metadata=json.loads('{"a":' * 40 + "1" + "}" * 40))),
    Case("nested metadata", "POST", "/machines", 400, "invalid_metadata",
         body=_create(metadata={"a": {"b": 1}})),
    Case("metadata as a list", "POST", "/machines", 400, "invalid_metadata",
         body=_create(metadata=[1, 2])),
    Case("an infinite number", "POST", "/machines", 400, "invalid_metadata",
         body=b'{"spec": "jobs", "metadata": {"n": 1e999}}'),
    Case("a 5000-digit integer", "POST", "/machines", 400, "invalid_request",
         body=b'{"spec": "jobs", "metadata": {"n": ' + b"9" * 5000 + b"}}"),
    Case("a body that is a JSON string", "POST", "/machines", 400, "invalid_request",
         body=b'"jobs"'),
    Case("not JSON at all", "POST", "/machines", 400, "invalid_request", body=b"spec=jobs"),
    Case("an unknown field", "POST", "/machines", 400, "invalid_request",
         body=_create(owner="x")),
    Case("an event for NEXT", "POST", "/machines/x/events", 400, "reserved_event",
         body=b'{"event": "NEXT", "spec": "jobs"}'),
    # ids and names with path characters
    Case("an id with a slash", "POST", "/machines", 400, "invalid_request",
         body=_create(id="a/b")),
    Case("an id of ..", "POST", "/machines", 400, "invalid_request", body=_create(id="..")),
    Case("an id climbing out", "POST", "/machines", 400, "invalid_request",
         body=_create(id="../../etc/passwd")),
    Case("a unicode id", "POST", "/machines", 400, "invalid_request",
         body=_create(id="mächine")),
    Case("an id of 129 characters", "POST", "/machines", 400, "invalid_request",
         body=_create(id="a" * 129)),
    Case("an encoded slash in the path", "GET", "/machines/a%2Fb", 400, "invalid_request"),
    Case("an encoded .. in the path", "GET", "/machines/%2e%2e", 400, "invalid_request"),
    Case("a raw .. in the path", "GET", "/machines/../specs", 404, "not_found"),
    Case("a unicode id in the path", "GET", "/machines/%C3%BC", 400, "invalid_request"),
    Case("a backslash id in the path", "GET", "/machines/..%5C..%5Cetc", 400,
         "invalid_request"),
    Case("a spec name climbing out", "GET", "/specs/..%2F..%2Fetc%2Fpasswd", 404,
         "spec_not_found"),
    Case("a spec name climbing out, in a body", "POST", "/machines", 404, "unknown_spec",
         body=json.dumps({"spec": "../../etc/passwd"}).encode()),
    Case("an event to a machine named ..", "POST", "/machines/../events", 400,
         "invalid_request", body=b'{"event": "LAUNCH"}'),
    # methods and headers
    Case("a made-up method", "BREW", "/machines", 405, "method_not_allowed"),
    Case("TRACE", "TRACE", "/machines/x", 405, "method_not_allowed"),
    Case("a non-ASCII idempotency key", "POST", "/machines", 400, "invalid_request",
         body=_create(), headers={"Idempotency-Key": "cl\xe9"}),
    Case("an idempotency key of 1000 characters", "POST", "/machines", 400,
         "invalid_request", body=_create(), headers={"Idempotency-Key": "k" * 1000}),
    Case("a limit of a million", "GET", "/machines?limit=1000000", 400, "invalid_request"),
    Case("a negative limit", "GET", "/machines/x/history?limit=-1", 400, "invalid_request"),
    Case("a forged next_token", "GET", "/machines?next_token=eyJpZCI6IH0", 400,
         "invalid_request"),
]  # fmt: skip


def test_every_hostile_request_is_refused_by_name(server: Server) -> None:
    wrong: list[tuple[str, int, str | None, object]] = []
    for case in CASES:
        answer = raw_request(
            server.url,
            case.method,
            case.target,
            body=case.body,
            headers=case.headers,
            content_length=case.content_length,
        )
        if (answer.status, answer.code) != (case.status, case.code):
            wrong.append((case.name, answer.status, answer.code, answer.body))
        elif not answer.headers.get("content-type", "").startswith("application/json"):
            wrong.append((case.name, answer.status, "not JSON", answer.headers))
    assert wrong == []
    _assert_still_serving(server)
    record("hostile", inputs=len(CASES), refused_by_name=len(CASES), server_errors=0)


def test_a_body_of_exactly_256_kib_is_accepted(server: Server) -> None:
    body = _exactly(LIMIT)
    assert len(body) == LIMIT
    answer = raw_request(server.url, "POST", "/machines", body=body)
    assert answer.status == 201, answer
    assert len(answer.body["metadata"]["pad"]) == FULL_PAD
    record("hostile", inputs=1)


def test_valid_unicode_is_kept_exactly(server: Server) -> None:
    metadata = {"emoji": "\U0001f600", "accents": "é ü ß", "rtl": "\u05e9\u05dc\u05d5\u05dd"}
    answer = raw_request(server.url, "POST", "/machines", body=_create(metadata=metadata))
    assert answer.status == 201, answer
    assert server.machine(answer.body["id"])["metadata"] == metadata  # type: ignore[index]
    record("hostile", inputs=1)


def test_a_client_that_stops_mid_body_holds_nothing_up(server: Server) -> None:
    """Connections that promise a body and send part of it, or nothing, then hang or
    close: requests on other connections are answered meanwhile."""
    split = urlsplit(server.url)
    address = (split.hostname or "127.0.0.1", split.port or 80)
    stalled = []
    for sent in (b"", b'{"spec": "jo'):
        sock = socket.create_connection(address, timeout=10)
        head = "POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
        sock.sendall(head.encode() + sent)
        stalled.append(sock)
    closed = socket.create_connection(address, timeout=10)
    closed.sendall(b"POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
    closed.close()
    try:
        started = time.monotonic()
        _assert_still_serving(server)
        assert time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()
    record("hostile", inputs=3)


def test_a_body_cut_short_is_not_run_even_when_it_parses(server: Server) -> None:
    split = urlsplit(server.url)
    mid = "cut-" + uuid.uuid4().hex[:8]
    body = json.dumps({"spec": "jobs", "id": mid}).encode()
    head = f"POST /machines HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body) + 10}\r\n\r\n"
    with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)  # the client is done: ten bytes never come
        assert sock.recv(1024) == b""  # closed without an answer
    assert server.machine(mid) is None
    _assert_still_serving(server)
    record("hostile", inputs=1)


def test_idempotency_keys_that_look_like_paths_stay_keys(server: Server) -> None:
    mid = "idem-" + uuid.uuid4().hex[:8]
    key = "../../" + uuid.uuid4().hex
    first = raw_request(
        server.url, "POST", "/machines", body=_create(id=mid), headers={"Idempotency-Key": key}
    )
    again = raw_request(
        server.url, "POST", "/machines", body=_create(id=mid), headers={"Idempotency-Key": key}
    )
    assert first.status == again.status == 201
    assert again.headers.get("idempotent-replayed") == "true"
    record("hostile", inputs=2)


def _assert_still_serving(server: Server) -> None:
    answer: RawAnswer = raw_request(server.url, "GET", "/specs")
    assert answer.status == 200
    log = server.log.read_text()
    assert "Traceback" not in log and "internal_error" not in log
    assert '" 500 ' not in log
