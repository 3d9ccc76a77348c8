"""A bounded load generator for 127.0.0.1: N client threads, each on one keep-alive
connection, sending one request after another until a deadline or a request budget;
every request's latency is recorded."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.stats import percentile

# (path, body) of the n-th request of client c
Request = Callable[[int, int], tuple[str, bytes]]


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> dict[str, float]:
        return {
            "events_per_second": self.per_second,
            "p50_ms": 1000 * percentile(self.latencies, 50),
            "p99_ms": 1000 * percentile(self.latencies, 99),
            "requests": self.requests,
            "errors": self.errors,
        }


def drive(
    url: str,
    request: Request,
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    expect: int,
) -> Load:
    """POST ``request(client, n)`` from ``clients`` threads for ``seconds`` (or until
    ``max_requests`` in all); a status other than ``expect`` counts as an error."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"load is only ever sent to 127.0.0.1, not {host}")
    per_client = max(1, max_requests // clients)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        mine = latencies[c]
        start_gate.wait()
        for n in range(per_client):
            if time.perf_counter() >= deadline[0]:
                break
            path, body = request(c, n)
            began = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            if response.status != expect:
                errors[c] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_gate.wait()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - began
    flat = [x for per in latencies for x in per]
    return Load(len(flat), elapsed, flat, sum(errors))
