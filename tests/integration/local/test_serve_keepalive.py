"""A client on one keep-alive connection gets each answer as soon as it is ready: the
server's two writes per answer (head, then body) are not held back by Nagle's algorithm
waiting for the client's delayed ACK (~40 ms an answer on Linux)."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

from statewright.local.control_plane import LocalControlPlane

REPO = Path(__file__).resolve().parents[3]
ANSWERS = 20


def test_keep_alive_answers_are_not_delayed(tmp_path: Path) -> None:
    with LocalControlPlane(specs_dirs=[REPO / "examples" / "specs"], data_dir=tmp_path) as cp:
        url = urlsplit(cp.serve(port=0))
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
        conn.request("GET", "/specs")  # first answer: connection set up, caches warm
        conn.getresponse().read()
        start = time.perf_counter()
        for _ in range(ANSWERS):
            conn.request("GET", "/specs")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
        elapsed = time.perf_counter() - start
        conn.close()
    # With the delayed-ACK stall every answer takes at least 40 ms (0.8 s in all).
    assert elapsed < ANSWERS * 0.02, f"{ANSWERS} answers took {elapsed:.2f}s"
