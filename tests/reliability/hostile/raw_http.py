"""HTTP/1.1 over a plain socket, so a test sends exactly the bytes it means (no client
library normalizes ``..``, refuses a control character or fixes a Content-Length)."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: Any
    status_line: str = ""

    @property
    def code(self) -> str | None:
        """The API's error code, when the body is its error shape."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return code if isinstance(code, str) else None
        return None


def raw_request(
    url: str,
    method: str,
    target: bytes | str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    content_length: int | None = None,
    host_header: str | None = None,
    timeout: float = 30.0,
) -> RawAnswer:
    """Send one request; ``content_length`` overrides the header (to lie about it),
    ``host_header`` the Host header (the server's own address by default)."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    target_bytes = target.encode("latin-1") if isinstance(target, str) else target
    host_line = f"Host: {host_header if host_header is not None else split.netloc}"
    lines = [method.encode() + b" " + target_bytes + b" HTTP/1.1", host_line.encode()]
    all_headers = {"Connection": "close", **(headers or {})}
    if body or content_length is not None:
        length = len(body) if content_length is None else content_length
        all_headers.setdefault("Content-Type", "application/json")
        all_headers["Content-Length"] = str(length)
    lines += [f"{k}: {v}".encode("latin-1") for k, v in all_headers.items()]
    request = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # The server may answer and close before reading it all: read the answer anyway.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        return read_answer(sock)


def send_bytes(url: str, data: bytes, *, timeout: float = 30.0) -> RawAnswer:
    """Send ``data`` as it is on a new connection and read one answer."""
    split = urlsplit(url)
    with socket.create_connection((split.hostname, split.port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> RawAnswer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    try:
        body = json.loads(rest[:length]) if length else None
    except ValueError:
        body = rest[:length].decode("latin-1")
    return RawAnswer(int(status_line.split()[1]), headers, body, status_line)
