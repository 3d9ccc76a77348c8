"""A real `statewright serve` resolves requests in parallel: a slow request holds up no
other, concurrent requests never see each other's, and one machine still has one
writer at a time (the store's conditional writes)."""

from __future__ import annotations

import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from statewright import LocalControlPlane

from tests.integration.local.helpers import FIXTURES
from tests.integration.local.server import Answer, Server

SPEC = "jobs"


def test_a_request_waiting_on_the_database_holds_up_no_other(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        assert server.request("POST", "/machines", {"spec": SPEC, "id": "slow"}).status == 201
        assert server.request("POST", "/machines", {"spec": SPEC, "id": "other"}).status == 201
        # Another program holds SQLite's write lock: a write through the API now waits
        # on the store's busy timeout, for as long as the lock is held.
        blocker = sqlite3.connect(server.data_dir / "statewright.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        slow: list[Answer] = []
        writer = threading.Thread(
            target=lambda: slow.append(
                server.request("POST", "/machines/slow/events", {"event": "TOUCH"})
            )
        )
        try:
            writer.start()
            # Until the writer is inside its request, the reads below prove nothing.
            writer.join(0.5)
            assert writer.is_alive() and not slow, slow
            # Answered while the write waits: reads of another machine, of the same
            # machine, the spec list and a miss.
            assert server.request("GET", "/machines/other").status == 200
            assert server.request("GET", "/machines/slow").body["version"] == 1
            assert server.request("GET", "/specs").status == 200
            assert server.request("GET", "/machines/nobody").status == 404
            assert writer.is_alive() and not slow, "the write finished while the lock was held"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            writer.join(30)
        assert [a.status for a in slow] == [202]
        assert server.request("GET", "/machines/slow").body["version"] == 2


def test_concurrent_requests_each_get_their_own_answer(tmp_path: Path) -> None:
    """Requests of eight clients interleave: every answer is about its own request (the
    resolver's current request, route arguments and validation are per thread). The
    control plane runs in this process so that the interpreter can be made to switch
    threads every few bytecodes, as a busy machine might."""
    clients, rounds = 8, 10
    plane = LocalControlPlane(
        specs_dirs=[FIXTURES / "specs"], data_dir=tmp_path, functions_dir=FIXTURES / "functions"
    )
    with plane:
        server = Server(tmp_path)
        server.url = plane.serve()

        def client(c: int) -> list[str]:
            mine, wrong = f"client-{c}", []
            created = server.request("POST", "/machines", {"spec": SPEC, "id": mine})
            if created.status != 201 or created.body["id"] != mine:
                wrong.append(f"create {mine}: {created}")
            for n in range(rounds):
                sent = server.request(
                    "POST", f"/machines/{mine}/events", {"event": "TOUCH", "metadata": {"n": n}}
                )
                if (
                    sent.status != 202
                    or sent.body["id"] != mine
                    or sent.body["metadata"] != {"n": n}
                ):
                    wrong.append(f"event {mine} {n}: {sent}")
                got = server.request("GET", f"/machines/{mine}")
                if got.status != 200 or got.body["id"] != mine:
                    wrong.append(f"get {mine}: {got}")
                # validation errors and wrong methods name the request's own fields
                bad = server.request("POST", f"/machines/{mine}/events", {"event": 7, f"x{c}": 1})
                if bad.status != 400 or f"x{c}" not in bad.body["error"]["message"]:
                    wrong.append(f"bad body {mine}: {bad}")
                put = server.request("PUT", f"/machines/{mine}/history")
                if put.status != 405 or put.headers.get("Allow") != "GET":
                    wrong.append(f"put {mine}: {put}")
            return wrong

        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            with ThreadPoolExecutor(max_workers=clients) as pool:
                problems = [p for found in pool.map(client, range(clients)) for p in found]
        finally:
            sys.setswitchinterval(switch_interval)
        assert problems == []
        for c in range(clients):
            machine = server.request("GET", f"/machines/client-{c}").body
            assert machine["version"] == 1 + rounds


def test_one_idempotency_key_sent_twice_at_once_runs_once(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        assert server.request("POST", "/machines", {"spec": SPEC, "id": "idem"}).status == 201
        headers = {"Idempotency-Key": "touch-once"}

        def touch(_: int) -> Answer:
            return server.request("POST", "/machines/idem/events", {"event": "TOUCH"}, headers)

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(touch, range(6)))
        assert [a.status for a in answers] == [202] * 6
        assert {a.body["version"] for a in answers} == {2}
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5
        assert server.request("GET", "/machines/idem").body["version"] == 2


def test_a_claim_left_by_a_killed_server_does_not_hold_its_key_after_restart(
    tmp_path: Path,
) -> None:
    """A server killed while answering leaves its key claimed; the restarted server owns
    the data dir alone, so the client's retry runs at once instead of answering 503
    until the claim expires."""
    server = Server(tmp_path).start()
    try:
        assert server.request("POST", "/machines", {"spec": SPEC, "id": "m"}).status == 201
        first = {"Idempotency-Key": "answered"}
        answer = server.request("POST", "/machines/m/events", {"event": "TOUCH"}, first)
        assert answer.status == 202
    finally:
        server.kill()
    database = sqlite3.connect(server.data_dir / "statewright.db", isolation_level=None)
    try:
        # The claim a request for key "crashed" would have left, stored the way the
        # answered key was (same caller scope), with its expiry far away.
        (stored,) = database.execute(
            "SELECT key FROM idempotency WHERE key LIKE '%answered'"
        ).fetchone()
        database.execute(
            "INSERT INTO idempotency (key, fingerprint, status, body, headers, expires_at) "
            "SELECT ?, fingerprint, 0, '{}', '{}', expires_at FROM idempotency WHERE key = ?",
            (stored.replace("answered", "crashed") + "#claim", stored),
        )
    finally:
        database.close()
    with Server(tmp_path) as again:
        retry = again.request(
            "POST", "/machines/m/events", {"event": "TOUCH"}, {"Idempotency-Key": "crashed"}
        )
        assert retry.status == 202, retry
        assert retry.headers.get("Idempotent-Replayed") is None
        replay = again.request(
            "POST", "/machines/m/events", {"event": "TOUCH"}, {"Idempotency-Key": "answered"}
        )
        assert replay.status == 202 and replay.headers.get("Idempotent-Replayed") == "true"
