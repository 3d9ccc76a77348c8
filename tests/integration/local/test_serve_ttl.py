"""TTL with a real `statewright serve` (docs/runtime.md, "TTL"): timers in its SQLite file,
fired by its timer thread, also after a SIGKILL. The spec is fixtures/specs/ttl.yml:
3 seconds to live, warnings 2s and 1s before, DESTROY on expiry."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.integration.local.server import Server, gone


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def history(server: Server, machine_id: str) -> list[dict[str, Any]]:
    answer = server.request("GET", f"/machines/{machine_id}/history?limit=1000")
    assert answer.status == 200, answer
    return list(answer.body["entries"])


def in_done(machine: dict[str, Any] | None) -> bool:
    return machine is not None and machine["state"] == "DONE"


def launch(server: Server, machine_id: str, **body: Any) -> dict[str, Any]:
    answer = server.request(
        "POST",
        f"/machines/{machine_id}/events",
        {"event": "LAUNCH", "spec": "ttl", "metadata": {"sleep": 3}, **body},
    )
    assert answer.status == 202, answer
    return dict(answer.body)


def assert_ended_by_expiry(entries: list[dict[str, Any]], expires_at: str) -> None:
    """The warnings, then expiry and its DESTROY (source and actor expiry), in order."""
    kinds = [(e["kind"], e.get("event"), e["source"], e["actor"]) for e in entries]
    ttl_entries = [k for k in kinds if k[0] in ("expiring", "expired") or k[2] == "expiry"]
    assert ttl_entries == [
        ("expiring", None, "expiry", "expiry"),
        ("expiring", None, "expiry", "expiry"),
        ("expired", None, "expiry", "expiry"),
        ("event", "DESTROY", "expiry", "expiry"),
    ], kinds
    by_kind = {e["kind"]: e for e in entries}
    # the expiry came at its time, within a few seconds
    late = seconds(by_kind["expired"]["at"]) - seconds(expires_at)
    assert 0 <= late < 3, late
    warnings = [seconds(e["at"]) for e in entries if e["kind"] == "expiring"]
    assert warnings[0] >= seconds(expires_at) - 2 and warnings[1] >= seconds(expires_at) - 1


def test_a_machine_is_destroyed_by_its_expire_event_after_its_warnings(tmp_path: Path) -> None:
    with Server(tmp_path, args=["--log-level", "DEBUG"]) as server:
        mid = new_id("ttl")
        expires_at = launch(server, mid)["expires_at"]
        machine = server.wait_for(mid, in_done, timeout=20)
        assert machine is not None and machine["expired"] is True
        assert_ended_by_expiry(history(server, mid), expires_at)
        server.wait_for(mid, gone, timeout=20)
    # the bus published both warnings before the machine was deleted
    log = server.log.read_text()
    expiring = [
        n for n, line in enumerate(log.splitlines()) if "Machine Expiring" in line and mid in line
    ]
    deleted = [
        n for n, line in enumerate(log.splitlines()) if "Machine Deleted" in line and mid in line
    ]
    assert len(expiring) == 2 and len(deleted) == 1, log[-3000:]
    assert max(expiring) < deleted[0]
    assert '"in_seconds": 2' in log and '"in_seconds": 1' in log


def test_an_extended_machine_is_not_destroyed(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        extended, touched = new_id("kept"), new_id("touched")
        launch(server, extended)
        launch(server, touched)
        answer = server.request("POST", f"/machines/{extended}/ttl", {"ttl": "1h"})
        assert answer.status == 200, answer
        # TOUCH (the spec's extend_on) moves expiry to 3s from now, each time
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert (
                server.request("POST", f"/machines/{touched}/events", {"event": "TOUCH"}).status
                == 202
            )
            time.sleep(0.5)
        for mid in (extended, touched):
            machine = server.machine(mid)
            assert machine is not None, mid
            assert (machine["state"], machine["expired"]) == ("RUN", False)
            assert "expired" not in [e["kind"] for e in history(server, mid)]
        assert "expiring" not in [e["kind"] for e in history(server, extended)]
        # left alone, the touched one expires 3s after its last TOUCH
        server.wait_for(touched, in_done, timeout=20)
        assert server.machine(extended)["state"] == "RUN"  # type: ignore[index]


def test_a_state_that_does_not_accept_the_expire_event_gets_it_on_its_next_entry(
    tmp_path: Path,
) -> None:
    with Server(tmp_path) as server:
        mid = new_id("init")
        answer = server.request(
            "POST", "/machines", {"spec": "ttl", "id": mid, "metadata": {"sleep": 3}}
        )
        assert answer.status == 201, answer
        # INIT does not accept DESTROY: the machine shows expired and waits
        machine = server.wait_for(mid, lambda m: m is not None and m["expired"], timeout=20)
        assert machine is not None and machine["state"] == "INIT"
        time.sleep(1)
        assert server.machine(mid)["state"] == "INIT"  # type: ignore[index]
        # LAUNCH enters RUN, which accepts it: DESTROY follows at once
        assert server.request("POST", f"/machines/{mid}/events", {"event": "LAUNCH"}).status == 202
        server.wait_for(mid, in_done, timeout=20)
        kinds = [(e["kind"], e.get("event"), e["actor"]) for e in history(server, mid)]
        assert kinds.index(("expired", None, "expiry")) < kinds.index(("event", "LAUNCH", "local"))
        assert kinds[kinds.index(("event", "LAUNCH", "local")) + 2] == (
            "event",
            "DESTROY",
            "expiry",
        )


def test_a_timer_due_while_the_server_was_killed_fires_after_restart(tmp_path: Path) -> None:
    server = Server(tmp_path).start()
    try:
        mid = new_id("crash")
        expires_at = launch(server, mid, ttl="5s")["expires_at"]
        server.kill()  # SIGKILL: long before any of its timers is due
    finally:
        server.kill()
    while time.time() < seconds(expires_at) + 1:
        time.sleep(0.2)  # nothing runs: the expiry falls due while the server is down
    with Server(tmp_path) as restarted:
        restarted.wait_for(mid, in_done, timeout=20)
        entries = history(restarted, mid)
        kinds = [(e["kind"], e["actor"]) for e in entries]
        assert ("expired", "expiry") in kinds and ("event", "expiry") in kinds
        restarted.wait_for(mid, gone, timeout=20)


def cli(*args: str) -> tuple[int, str]:
    from statewright.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_cli_creates_with_a_ttl_lists_expiry_and_extends(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        mid = new_id("cli")
        code, out = cli(
            "machines", "create", "ttl", "--id", mid, "--ttl", "30m", "--endpoint", server.url
        )
        assert code == 0, out
        assert "expires " in out and ("(in 29m" in out or "(in 30m" in out), out
        code, out = cli("machines", "list", "--spec", "ttl", "--endpoint", server.url)
        assert code == 0, out
        assert "expires" in out.splitlines()[0]
        row = next(line for line in out.splitlines() if line.startswith(mid))
        assert "in 29m" in row or "in 30m" in row, row
        code, out = cli("machines", "extend", mid, "45m", "--endpoint", server.url)
        assert code == 0, out
        assert "(in 44m" in out or "(in 45m" in out, out
        code, out = cli("machines", "extend", mid, "2h", "--endpoint", server.url)
        assert code == 1
        assert "its max_ttl is 1h; ask for at most that [invalid_request]" in " ".join(out.split())
    code, out = cli("machines", "extend", "--help")
    assert code == 0 and "DURATION" in out and "max_ttl" in out
    assert "\x1b" not in out  # plain text, no terminal codes
