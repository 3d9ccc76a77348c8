"""The local HTTP server: each request becomes an API Gateway REST proxy event for the
same resolver the Lambda dispatcher runs (statewright.api), and its proxy result becomes
the HTTP answer. Binds 127.0.0.1 unless told otherwise.

Python's ``http.server`` carries the connections (docs/local.md says why it was kept
over an ASGI server), hardened where it is lenient: a strict request line and headers,
``Content-Length`` as plain decimal digits, an idle timeout, at most
``MAX_CONNECTIONS`` open connections, and every refusal — its own included — an
``HTTP/1.1`` answer in the API's JSON error shape. Before routing, the browser checks
of :mod:`statewright.local.trust` run; ``/console/`` serves the console's files."""

from __future__ import annotations

import base64
import errno
import itertools
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from email.errors import MissingHeaderBodySeparatorDefect
from email.utils import formatdate
from http import HTTPStatus
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from statewright.access import LOCAL_PRINCIPAL
from statewright.api import MAX_BODY_BYTES, error_response, proxy_result
from statewright.errors import InvalidRequest, PayloadTooLarge, StatewrightError
from statewright.local.console_files import HEADERS as CONSOLE_HEADERS
from statewright.local.console_files import ConsoleFiles, is_console_path
from statewright.local.trust import Refusal, TrustPolicy
from statewright.printable import printable

logger = logging.getLogger(__name__)

Resolve = Callable[[dict[str, Any]], dict[str, Any]]
Result = dict[str, Any]  # an API Gateway proxy result

MAX_CONNECTIONS = 256
IDLE_TIMEOUT_SECONDS = 30.0
MAX_HEADERS = 100
MAX_HEADER_LINE = 65536  # bytes, as the request line's limit

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([^\x00-\x20\x7f]+) (HTTP/[0-9]\.[0-9])\r?\n")
_HEADER_NAME = re.compile(_TOKEN.decode())
_BAD_HEADER_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile("[0-9]{1,19}")
_PROTOCOL_ERRORS = {
    HTTPStatus.BAD_REQUEST: "invalid_request",
    HTTPStatus.REQUEST_TIMEOUT: "request_timeout",
    HTTPStatus.REQUEST_URI_TOO_LONG: "uri_too_long",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers_too_large",
    HTTPStatus.NOT_IMPLEMENTED: "not_implemented",
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: "http_version_not_supported",
}


class _HeadersTooLarge(Exception):
    """A header line over MAX_HEADER_LINE bytes, or more than MAX_HEADERS of them."""


def error_result(
    status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()
) -> Result:
    """A proxy result in the API's error shape."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **dict(headers)},
        "body": json.dumps({"error": {"code": code, "message": message}}),
    }


# Request ids: unique in this process (a counter) and unlike another process's (a random
# start), in the UUID form API Gateway uses, without a call for randomness per request.
_REQUEST_IDS = itertools.count(uuid.uuid4().int & ~((1 << 64) - 1))


def _request_id() -> str:
    return str(uuid.UUID(int=next(_REQUEST_IDS), version=4))


def proxy_event(  # noqa: PLR0913 — the HTTP request's parts, one per proxy-event field
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    actor: str = LOCAL_PRINCIPAL,
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for one HTTP request; ``actor`` (the
    caller) goes where API Gateway puts the IAM principal, ``identity.userArn``.
    InvalidRequest when the path or query string is not UTF-8."""
    split = urlsplit(target)
    try:
        # Segment by segment, so an encoded "/" stays inside its segment (and fails the
        # id's validation with a 400) instead of making up another route.
        path = "/".join(
            unquote(part, errors="strict").replace("/", "%2F")
            for part in (split.path or "/").split("/")
        )
        pairs = parse_qsl(split.query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the path or query string is not valid UTF-8") from exc
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in pairs:
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        # What API Gateway does with a binary body: base64, flagged. The resolver's
        # screening then answers 400 (the API only takes UTF-8 JSON).
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": _request_id(),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userArn": actor},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    # An answer before the request line is understood still gets a status line.
    default_request_version = "HTTP/1.1"
    server_version = "statewright"
    sys_version = ""
    # An answer goes out in one write, but one larger than a segment is several, and
    # with Nagle's algorithm on a keep-alive client's delayed ACK holds the last one
    # back ~40 ms.
    disable_nagle_algorithm = True
    # The Date header's value and the second it was made for, shared by the threads:
    # formatting it is a fair part of answering, and it changes once a second.
    _date: tuple[int, str] = (0, "")

    def setup(self) -> None:
        # The socket's timeout: a connection with nothing to read for this long (idle
        # between requests, or stalled inside one) is closed.
        self.connection = self.request
        self.connection.settimeout(self.server.idle_timeout)
        super().setup()

    # ---- parsing, stricter than http.server -------------------------------------------

    def parse_request(self) -> bool:
        self.command = ""
        self.request_version = self.default_request_version
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        line = _REQUEST_LINE.fullmatch(self.raw_requestline)
        if line is None:
            self.send_error(
                HTTPStatus.BAD_REQUEST,
                "the request line must be `METHOD /path HTTP/1.1`: one space between the "
                "three, no control characters",
            )
            return False
        if line.group(3) not in (b"HTTP/1.0", b"HTTP/1.1"):
            self.send_error(
                HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                f"{line.group(3).decode()} is not supported; send HTTP/1.1",
            )
            return False
        method, target, version = (part.decode("iso-8859-1") for part in line.groups())
        self.command, self.request_version = method, version
        # As http.server does: a target starting "//" would read as a host to a client.
        self.path = "/" + target.lstrip("/") if target.startswith("//") else target
        try:
            self.headers = self._read_headers()
        except _HeadersTooLarge as exc:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, str(exc))
            return False
        problem = self._header_problem()
        if problem is not None:
            self.send_error(HTTPStatus.BAD_REQUEST, problem)
            return False
        connection = self.headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive"
        )
        expects = self.headers.get("Expect", "").lower() == "100-continue"
        return not (expects and version == "HTTP/1.1" and not self.handle_expect_100())

    def _read_headers(self) -> HTTPMessage:
        """The header lines up to the empty one, as http.server keeps them (an
        ``HTTPMessage``), read without its e-mail parser: a line that is not
        ``Name: value`` is kept aside as a defect, to be refused, instead of being parsed
        as something else. _HeadersTooLarge over MAX_HEADER_LINE bytes a line or
        MAX_HEADERS lines."""
        headers = HTTPMessage()
        for _ in range(MAX_HEADERS + 1):
            raw = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(raw) > MAX_HEADER_LINE:
                raise _HeadersTooLarge("Line too long")
            if raw in (b"\r\n", b"\n", b""):
                return headers
            line = raw.decode("iso-8859-1").rstrip("\r\n")
            name, colon, value = line.partition(":")
            if not colon or line[0] in " \t":  # no colon, or folded onto the line before
                headers.defects.append(MissingHeaderBodySeparatorDefect(line))
            else:
                headers[name] = value.lstrip(" \t")
        raise _HeadersTooLarge("Too many headers")

    def _header_problem(self) -> str | None:
        if self.headers.defects:
            return "a header line is not `Name: value` (or is folded onto the next line)"
        for name, value in self.headers.items():
            if not _HEADER_NAME.fullmatch(name):
                return f"the header name {name!r} is not a token"
            if _BAD_HEADER_VALUE.search(value):
                return f"the header {name} holds a control character"
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error http.server itself answers (and the ones above), as JSON."""
        status = HTTPStatus(code)
        self.close_connection = True
        text = message or status.phrase
        if len(text) > 300:
            text = text[:300] + "..."
        self.log_error("code %d, message %s", code, text)
        result = error_result(
            status, _PROTOCOL_ERRORS.get(status, "invalid_request"), f"{status.phrase}: {text}"
        )
        self._send(result)

    # ---- requests ---------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, made-up ones) goes to the API too, which
        # answers 405 or 404 in its own error shape rather than http.server's 501 page.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        try:
            result = self._answer()
        except (TimeoutError, ConnectionError):
            # The client stalled past the idle timeout or left while sending its body.
            self.close_connection = True
            return
        except Exception:
            # The server is a process boundary: a bug answers 500 with the error shape of
            # the API (the trace goes to the server log, never to the client).
            logger.exception("%s failed", printable(self.requestline))
            result = error_result(
                500, "internal_error", "internal error; see the statewright serve log"
            )
        if result is not None:
            self._send(result)

    def _answer(self) -> Result | None:
        """The proxy result to answer with; None when the client left mid-body."""
        try:
            length = self._content_length()
            headers = list(self.headers.items())
            self.server.policy.check_browser(headers)
            path = urlsplit(self.path).path
            # The console's files need no token (the console asks for one).
            actor = None if is_console_path(path) else self.server.policy.caller(headers)
        except Refusal as refusal:
            # The body, if any, is not read: the connection is closed instead of drained.
            self.close_connection = True
            return error_result(refusal.status, refusal.code, refusal.message, refusal.headers)
        except StatewrightError as exc:
            self.close_connection = True
            return proxy_result(error_response(exc))
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client closed before sending the body it announced: the request is
            # incomplete, so it is not run (a cut-off body can still parse as JSON).
            self.close_connection = True
            return None
        if actor is None:
            return self._console(path)
        try:
            event = proxy_event(
                # HEAD is GET without the body (_send leaves it out)
                "GET" if self.command == "HEAD" else self.command,
                self.path,
                headers,
                body,
                source_ip=self.client_address[0],
                actor=actor,
            )
        except StatewrightError as exc:
            return proxy_result(error_response(exc))
        return self.server.resolve(event)

    def _content_length(self) -> int:
        """The body's length: StatewrightError for a body sent in chunks, a length that
        is not plain decimal digits (``+10``, ``1_0``), two different lengths, or one over
        the limit."""
        if self.headers.get_all("Transfer-Encoding"):
            raise InvalidRequest(
                "Transfer-Encoding (chunked bodies) is not supported; send the body with "
                "Content-Length"
            )
        values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        if not values:
            return 0
        if any(not _DIGITS.fullmatch(v) for v in values):
            raise InvalidRequest("Content-Length must be a decimal number of bytes (digits only)")
        if len({int(v) for v in values}) > 1:
            raise InvalidRequest("the request has two different Content-Length headers")
        length = int(values[0])
        if length > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the body is {length} bytes; the limit is {MAX_BODY_BYTES} bytes (256 KiB)"
            )
        return length

    def _console(self, path: str) -> Result:
        if self.command not in ("GET", "HEAD"):
            return error_result(
                405,
                "method_not_allowed",
                f"{printable(path)} takes GET and HEAD",
                [("Allow", "GET, HEAD")],
            )
        if path == "/console":
            return error_result(
                308, "moved", "the console is at /console/", [("Location", "/console/")]
            )
        found = self.server.console.find(path)
        if found is None:
            missing = "" if self.server.console.root.is_dir() else " (this build has no console)"
            return error_result(404, "not_found", f"no console file at {path}{missing}")
        return {
            "statusCode": 200,
            "headers": {"Content-Type": found.content_type, **dict(CONSOLE_HEADERS)},
            "body": base64.b64encode(found.data).decode(),
            "isBase64Encoded": True,
        }

    # ---- answers ----------------------------------------------------------------------

    def _send(self, result: Result) -> None:
        try:
            self._write(result)
        except (BrokenPipeError, ConnectionResetError):
            # The client left before its answer: nobody to tell (and no trace to log).
            self.close_connection = True

    def _write(self, result: Result) -> None:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        self.send_response(int(result.get("statusCode", 500)))
        headers: list[tuple[str, str]] = []
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        for name, value in (result.get("headers") or {}).items():
            headers.append((name, str(value)))
        for name, value in headers:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # The head and the body in one write: one system call, and one segment for a
        # small answer (a client then wakes once per answer, not twice).
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        second_made, text = _Handler._date
        if second_made != second:
            text = formatdate(second, usegmt=True)
            _Handler._date = (second, text)
        return text

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and error messages are the client's bytes: escaped, so no
        # control character reaches the terminal that shows the log.
        logger.info("%s %s", self.client_address[0], printable(format % args))


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server in front of ``resolve`` (an API Gateway proxy handler,
    called from several threads at once: LocalControlPlane.resolve serializes it).
    A thread per connection, at most ``max_connections`` of them: a connection beyond
    that is answered ``503`` at once and closed, so idle or stalled clients can use up
    neither threads nor file descriptors."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog (5) resets a burst of concurrent clients.
    request_queue_size = 256

    def __init__(  # noqa: PLR0913 — wiring passed by name, once, by LocalControlPlane
        self,
        address: tuple[str, int],
        resolve: Resolve,
        *,
        policy: TrustPolicy | None = None,
        console: ConsoleFiles | None = None,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        self.resolve = resolve
        self.policy = policy or TrustPolicy()
        self.console = console or ConsoleFiles()
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._open = 0
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}"

    @property
    def open_connections(self) -> int:
        return self._open

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                # Out of file descriptors: the listening socket stays readable, so without
                # a pause the accept loop would spin. Connections wait in the backlog.
                logger.warning("out of file descriptors; accepting again shortly")
                time.sleep(0.1)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            admitted = self._open < self.max_connections
            if admitted:
                self._open += 1
        if admitted:
            super().process_request(request, client_address)
        else:
            self._refuse(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open -= 1

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 on the accepting thread, without waiting for the request: the
        answer fits the socket's buffer, and the socket is never read."""
        result = error_result(
            503,
            "too_many_connections",
            f"the server has {self.max_connections} connections open, its limit; "
            "try again in a moment",
            [("Retry-After", "1")],
        )
        body = str(result["body"]).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Retry-After: 1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.setblocking(False)
            sock.send(head.encode() + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client is already gone
        finally:
            sock.close()
