"""The local HTTP server: each request becomes an API Gateway REST proxy event for the
same resolver the Lambda dispatcher runs (statewright.api), and its proxy result becomes
the HTTP answer. Binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from statewright.api import MAX_BODY_BYTES, error_response, proxy_result
from statewright.errors import InvalidRequest, PayloadTooLarge, StatewrightError

logger = logging.getLogger(__name__)

Resolve = Callable[[dict[str, Any]], dict[str, Any]]


def proxy_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for one HTTP request; InvalidRequest when
    the path or query string is not UTF-8."""
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
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "statewright"
    sys_version = ""
    # The status line and headers go out in one write and the body in another; with
    # Nagle's algorithm on, a keep-alive client's delayed ACK then holds every answer
    # back ~40 ms.
    disable_nagle_algorithm = True

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
            result = self._resolve()
            if result is None:
                return
        except Exception:
            # The server is a process boundary: a bug answers 500 with the error shape of
            # the API (the trace goes to the server log, never to the client).
            logger.exception("%s %s failed", self.command, self.path)
            result = {
                "statusCode": 500,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(
                    {
                        "error": {
                            "code": "internal_error",
                            "message": "internal error; see the statewright serve log",
                        }
                    }
                ),
            }
        try:
            self._write(result)
        except (BrokenPipeError, ConnectionResetError):
            # The client left before its answer: nobody to tell (and no trace to log).
            self.close_connection = True

    def _resolve(self) -> dict[str, Any] | None:
        """The proxy result to answer with; None when the client left mid-body."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return proxy_result(
                error_response(
                    InvalidRequest(
                        "chunked bodies are not supported; send the body with Content-Length"
                    )
                )
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return proxy_result(error_response(InvalidRequest("Content-Length is not a number")))
        if length > MAX_BODY_BYTES:
            # Not read at all; the connection is closed instead of drained.
            self.close_connection = True
            return proxy_result(
                error_response(
                    PayloadTooLarge(
                        f"the body is {length} bytes; the limit is {MAX_BODY_BYTES} bytes (256 KiB)"
                    )
                )
            )
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client closed before sending the body it announced: the request is
            # incomplete, so it is not run (a cut-off body can still parse as JSON).
            self.close_connection = True
            return None
        try:
            event = proxy_event(
                # HEAD is GET without the body (_write leaves it out)
                "GET" if self.command == "HEAD" else self.command,
                self.path,
                list(self.headers.items()),
                body,
                source_ip=self.client_address[0],
            )
        except StatewrightError as exc:
            return proxy_result(error_response(exc))
        return self.server.resolve(event)

    def _write(self, result: dict[str, Any]) -> None:
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
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s " + format, self.client_address[0], *args)


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server in front of ``resolve`` (an API Gateway proxy handler,
    called from several threads at once: LocalControlPlane.resolve serializes it)."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog (5) resets a burst of concurrent clients.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], resolve: Resolve) -> None:
        self.resolve = resolve
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}"
