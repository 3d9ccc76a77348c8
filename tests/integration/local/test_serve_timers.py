"""Retry backoff and task timeouts on timers, seen from outside a real `statewright serve`
(docs/runtime.md, "Timers"): nothing waits during a backoff but a row in the timers
table; a crash during the backoff loses nothing; a timer that fell due while the server
was down fires when it starts; an attempt past its timeout fails with Timeout and is
retried."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.integration.local.server import FIXTURES, Server, children_of, in_state

SPECS = [FIXTURES / "timers"]
BACKOFF = 4.0  # timed.yml: flaky retries once, 4 s after its first attempt failed


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def go(server: Server, machine_id: str, **metadata: Any) -> None:
    answer = server.request(
        "POST",
        f"/machines/{machine_id}/events",
        {"event": "GO", "spec": "timed", "metadata": metadata},
    )
    assert answer.status == 202, answer


def runs(path: Path, machine_id: str) -> list[tuple[int, float]]:
    """(attempt, unix time it started) of each run of the machine's task."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        mid, attempt, at = line.split()
        if mid == machine_id:
            found.append((int(attempt), float(at)))
    return found


def timer_rows(server: Server) -> list[dict[str, Any]]:
    """The timers table of the server's SQLite file, as the server keeps it."""
    with sqlite3.connect(server.data_dir / "statewright.db") as db:
        bodies = db.execute("SELECT body FROM timers ORDER BY due").fetchall()
    return [json.loads(body) for (body,) in bodies]


def attempt_timer(server: Server, machine_id: str) -> dict[str, Any]:
    """The machine's ATTEMPT timer, once it is armed (just after the write that made
    the attempt pending)."""
    deadline = time.monotonic() + 10
    while True:
        found = [
            r
            for r in timer_rows(server)
            if r["purpose"] == "attempt" and r["machine_id"] == machine_id
        ]
        if found:
            [row] = found
            return row
        assert time.monotonic() < deadline, f"no attempt timer: {timer_rows(server)}"
        time.sleep(0.05)


def backing_off(machine: dict[str, Any] | None) -> bool:
    task = machine["tasks"]["flaky"] if machine else None
    return task is not None and task["attempt"] == 2 and task["status"] == "pending"


def killed_in_backoff(
    tmp_path: Path, machine_id: str, runs_file: Path
) -> tuple[Server, dict[str, Any]]:
    """A server whose machine's first attempt failed, SIGKILLed during the backoff;
    returns it (dead) and the attempt timer it had armed."""
    server = Server(tmp_path, specs=SPECS).start()
    try:
        go(server, machine_id, runs_file=str(runs_file), succeed_on=2)
        server.wait_for(machine_id, backing_off, 30)
        row = attempt_timer(server, machine_id)
    finally:
        server.kill()
    return server, row


def unix(due: str) -> float:
    return datetime.fromisoformat(due).timestamp()


def test_a_backoff_waits_on_a_timer_row_with_no_process_running(tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.txt"
    mid = new_id()
    with Server(tmp_path, specs=SPECS) as server:
        go(server, mid, runs_file=str(runs_file), succeed_on=2)
        server.wait_for(mid, backing_off, 30)
        # during the backoff: an ATTEMPT timer in the table, and nothing running
        row = attempt_timer(server, mid)
        assert row["guard"] == {"task": "flaky", "epoch": 2, "attempt": 2}
        assert server.process is not None
        assert children_of(server.process.pid) == []
        assert [a for a, _ in runs(runs_file, mid)] == [1]

        machine = server.wait_for(mid, in_state("DONE"), 30)
        assert machine is not None and machine["tasks"]["flaky"]["attempt"] == 2
        [(_, first), (_, second)] = runs(runs_file, mid)
        assert second >= unix(row["due"])  # not before the backoff was over
        assert second - first >= BACKOFF
        history = server.request("GET", f"/machines/{mid}/history").body["entries"]
        finished = [e for e in history if e["kind"] == "task_finished"]
        assert [(e["attempt"], e["status"]) for e in finished] == [(1, "failed"), (2, "succeeded")]
        # the fired timer is gone from the table (the attempt's timeout was disarmed)
        assert [r for r in timer_rows(server) if r["machine_id"] == mid] == []


def test_sigkill_during_the_backoff_then_restart_starts_the_attempt_at_not_before(
    tmp_path: Path,
) -> None:
    runs_file = tmp_path / "runs.txt"
    mid = new_id()
    _, row = killed_in_backoff(tmp_path, mid, runs_file)
    assert time.time() < unix(row["due"]), "the kill came after the backoff; make it longer"

    with Server(tmp_path, specs=SPECS) as restarted:
        # started again before the backoff ends: the attempt still waits for it
        machine = restarted.wait_for(mid, in_state("DONE"), 30)
        assert machine is not None and machine["tasks"]["flaky"]["attempt"] == 2
    attempts = runs(runs_file, mid)
    assert [a for a, _ in attempts] == [1, 2]  # run once each, nothing doubled
    assert attempts[1][1] >= unix(row["due"])


def test_a_timer_due_while_the_server_was_down_fires_when_it_starts(tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.txt"
    mid = new_id()
    server, row = killed_in_backoff(tmp_path, mid, runs_file)
    # down past the due time: the row is still there, nothing ran
    time.sleep(max(0.0, unix(row["due"]) - time.time()) + 0.5)
    assert row in timer_rows(server)
    assert [a for a, _ in runs(runs_file, mid)] == [1]

    with Server(tmp_path, specs=SPECS) as restarted:
        machine = restarted.wait_for(mid, in_state("DONE"), 30)
        assert machine is not None
        assert [a for a, _ in runs(runs_file, mid)] == [1, 2]
        # the overdue timer fired at start (recovery may have started the attempt
        # first, the timer is then stale) and is gone from the table
        deadline = time.monotonic() + 10
        while row in timer_rows(restarted):
            assert time.monotonic() < deadline, "the overdue timer never fired"
            time.sleep(0.05)


def test_an_attempt_past_its_timeout_fails_with_timeout_and_is_retried(tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.txt"
    mid = new_id()
    with Server(tmp_path, specs=SPECS) as server:
        # attempt 1 sleeps far past the task's timeout (2 s); attempt 2 succeeds at once
        go(server, mid, runs_file=str(runs_file), sleep_first=60)
        machine = server.wait_for(mid, in_state("DONE"), 60)
        assert machine is not None and machine["tasks"]["flaky"]["attempt"] == 2
        history = server.request("GET", f"/machines/{mid}/history").body["entries"]
        finished = [e for e in history if e["kind"] == "task_finished"]
        assert [(e["attempt"], e["status"], e["error_type"]) for e in finished] == [
            (1, "failed", "Timeout"),
            (2, "succeeded", None),
        ]
        started = [e for e in history if e["kind"] == "task_started"]
        assert unix(finished[0]["at"]) - unix(started[0]["at"]) >= 2  # not before its timeout
        assert server.process is not None
        assert children_of(server.process.pid) == []  # the timed-out run was stopped
    [(_, first), (_, second)] = runs(runs_file, mid)
    assert second - first >= BACKOFF
