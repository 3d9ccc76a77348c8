"""Local HTTP: no-op events per second and their latency against a real ``statewright
serve`` process, beside Python's bare threading HTTP server answering 200, both on
127.0.0.1 and driven by the same client threads in the same run.

Each client thread owns one machine (at rest in RUN) and one keep-alive connection and
sends ``POST /machines/{id}/events {"event": "TOUCH"}`` — a no-op that is still read,
decided, recorded in history and written — as fast as answers come back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import specs
from bench.http_load import drive

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


def run(
    workdir: Path, *, clients: int = 8, seconds: float = 5.0, max_requests: int = 200_000
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
        **bounds,
    }
