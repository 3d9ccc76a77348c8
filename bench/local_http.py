"""Local HTTP: no-op events per second and their latency against a real ``statewright
serve`` process, beside Python's bare threading HTTP server answering 200, both on
127.0.0.1 and driven by the same client threads in the same run.

Each client thread owns one machine (at rest in RUN) and one keep-alive connection and
sends ``POST /machines/{id}/events {"event": "TOUCH"}`` — a no-op that is still read,
decided, recorded in history and written — as fast as answers come back.

Latency without load, from one client on one keep-alive connection: the same event sent
one at a time, and the ``NEXT`` hop — after LAUNCH's answer (the machine in PROVISION,
a state without tasks, its NEXT published on the bus), the time until a ``GET`` sent
right after the previous one first shows the machine in RUN (so it is over by at most
one GET's time)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import specs
from bench.http_load import drive
from bench.stats import percentile

HERE = Path(__file__).resolve().parent
SPEC = "bench-preview-env"
BODY = json.dumps({"event": specs.NOOP_EVENT}).encode()


def _event_request(machines: list[str]) -> Any:
    def request(client: int, n: int) -> tuple[str, bytes]:
        return f"/machines/{machines[client]}/events", BODY

    return request


def _bare_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "bare_server.py")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise RuntimeError(f"the bare server did not start: {url!r}")
    return process, url


class _Client:
    """One keep-alive connection to 127.0.0.1."""

    def __init__(self, url: str) -> None:
        split = urlsplit(url)
        self.conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")


def _latencies(url: str, machine: str, *, events: int, hops: int) -> dict[str, float]:
    """One client, nothing else running: ``events`` no-op events one at a time, then
    ``hops`` machines LAUNCHed, each watched until its NEXT moved it to RUN."""
    client = _Client(url)
    took: list[float] = []
    for _ in range(events):
        began = time.perf_counter()
        status, _ = client.call("POST", f"/machines/{machine}/events", {"event": "TOUCH"})
        took.append(time.perf_counter() - began)
        assert status == 202, status
    hop_times: list[float] = []
    for n in range(hops):
        hop = f"hop-{n}"
        assert client.call("POST", "/machines", {"spec": SPEC, "id": hop})[0] == 201
        status, body = client.call("POST", f"/machines/{hop}/events", {"event": "LAUNCH"})
        answered = time.perf_counter()
        assert status == 202 and body["state"] == "PROVISION", body
        while body["state"] != "RUN":
            status, body = client.call("GET", f"/machines/{hop}")
            assert status == 200 and time.perf_counter() - answered < 30, body
        hop_times.append(time.perf_counter() - answered)
    client.conn.close()
    return {
        "one_client_p50_ms": 1000 * percentile(took, 50),
        "one_client_p99_ms": 1000 * percentile(took, 99),
        "next_hop_p50_ms": 1000 * percentile(hop_times, 50),
        "next_hop_p99_ms": 1000 * percentile(hop_times, 99),
        "one_client_events": events,
        "next_hops": hops,
    }


def run(
    workdir: Path,
    *,
    clients: int = 8,
    seconds: float = 5.0,
    max_requests: int = 200_000,
    events: int = 300,
    hops: int = 100,
) -> dict[str, Any]:
    from tests.integration.local.server import Server

    spec_dir = workdir / "http-specs"
    specs.write(spec_dir, SPEC, specs.preview_env(noop=True))
    (workdir / "http").mkdir(parents=True, exist_ok=True)
    server = Server(workdir / "http", specs=[spec_dir])
    bounds = {"clients": clients, "seconds": seconds, "max_requests": max_requests}
    with server:
        machines = [f"http-{c}" for c in range(clients)]
        for machine in machines:
            assert server.request("POST", "/machines", {"spec": SPEC, "id": machine}).status == 201
            launched = server.request("POST", f"/machines/{machine}/events", {"event": "LAUNCH"})
            assert launched.status == 202, launched
        request = _event_request(machines)
        drive(server.url, request, **{**bounds, "seconds": min(1.0, seconds)}, expect=202)
        statewright = drive(server.url, request, **bounds, expect=202)
        latency = _latencies(server.url, machines[0], events=events, hops=hops)
    bare_process, bare_url = _bare_server()
    try:
        drive(bare_url, request, **{**bounds, "seconds": min(1.0, seconds)}, expect=200)
        bare = drive(bare_url, request, **bounds, expect=200)
    finally:
        bare_process.kill()
        bare_process.wait(10)
    if statewright.errors or bare.errors:
        raise RuntimeError(
            f"requests failed: statewright {statewright.errors}, bare server {bare.errors}"
        )
    ours = statewright.summary()
    return {
        "events_per_second": ours["events_per_second"],
        "p50_ms": ours["p50_ms"],
        "p99_ms": ours["p99_ms"],
        "requests": ours["requests"],
        "bare_http_server": bare.summary(),
        "ratio_vs_bare_http_server": ours["events_per_second"] / bare.per_second,
        **latency,
        **bounds,
    }
