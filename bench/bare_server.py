"""The baseline of the local HTTP benchmark: Python's own threading HTTP server answering
every request 200 with a small JSON body (keep-alive, like ``statewright serve``). Run as
a script; prints its URL, serves until killed."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BODY = b'{"ok":true}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as statewright's server: no delayed-ACK stalls

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # as statewright's ApiServer


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    print(f"http://{host}:{port}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
