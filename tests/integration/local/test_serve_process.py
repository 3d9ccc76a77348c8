"""`statewright serve` as a process (flags, shutdown, refusals) and the `statewright
machines` CLI against it."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.local.server import STATEWRIGHT, Server, in_state

pytestmark = pytest.mark.terraform


def cli(server: Server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STATEWRIGHT, "machines", *args, "--endpoint", server.url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("cli")) as s:
        yield s


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    server = Server(tmp_path).start()
    assert server.request("GET", "/specs").status == 200
    assert server.stop(sig) == 0
    assert "shutting down" in server.log.read_text()
    assert "Traceback" not in server.log.read_text()


def test_a_second_server_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    with Server(tmp_path):
        second = subprocess.run(
            Server(tmp_path).argv(), capture_output=True, text=True, timeout=60, check=False
        )
    assert second.returncode == 2
    assert "in use" in second.stderr and "--data-dir" in second.stderr
    assert "Traceback" not in second.stderr


def test_a_missing_specs_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [STATEWRIGHT, "serve", "--port", "0", "--specs", str(tmp_path / "nope"),
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_spec_with_errors_is_refused_with_its_findings(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "broken.yml").write_text("version: 1.0\nevents: [GO]\nstates: {}\n")
    result = subprocess.run(
        [STATEWRIGHT, "serve", "--port", "0", "--specs", str(specs),
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "broken.yml" in result.stderr and "Traceback" not in result.stderr


def test_cli_walkthrough_launch_watch_destroy(server: Server) -> None:
    mid = "cli-" + uuid.uuid4().hex[:8]
    created = cli(server, "create", "demo", "--id", mid, "-m", "owner=ana", "-m", "size=3")
    assert created.returncode == 0, created.stderr
    assert mid in created.stdout and "INIT" in created.stdout

    got = cli(server, "get", mid, "--json")
    assert json.loads(got.stdout)["metadata"] == {"owner": "ana", "size": 3}

    sent = cli(server, "send", mid, "LAUNCH")
    assert sent.returncode == 0 and "PROVISION" in sent.stdout
    watched = cli(server, "watch", mid, "--interval", "0.2", "--timeout", "90")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "PROVISION -> RUN on NEXT" in watched.stdout
    assert "waiting" in watched.stdout

    listed = cli(server, "list", "--spec", "demo", "--json")
    assert mid in [m["id"] for m in json.loads(listed.stdout)]
    history = cli(server, "history", mid)
    assert "INIT -> PROVISION on LAUNCH" in history.stdout

    # send --watch follows from the answer on: a teardown done before the first poll is
    # still reported as a deletion
    destroyed = cli(server, "send", mid, "DESTROY", "--watch", "--interval", "0.2")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "RUN -> TEARDOWN on DESTROY" in destroyed.stdout
    assert f"{mid} deleted (its last state was TEARDOWN)" in destroyed.stdout
    assert "INIT -> PROVISION" not in destroyed.stdout  # only what followed the send

    unknown = cli(server, "watch", mid)
    assert unknown.returncode == 1
    assert "never created, or already deleted" in unknown.stderr

    missing = cli(server, "get", mid)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "machine_not_found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_watch_exits_1_on_failure_and_retry_recovers(server: Server) -> None:
    mid = "cli-" + uuid.uuid4().hex[:8]
    sent = cli(server, "send", mid, "LAUNCH", "--spec", "jobs", "-m", "fail=true")
    assert sent.returncode == 0, sent.stderr
    watched = cli(server, "watch", mid, "--interval", "0.2", "--timeout", "60")
    assert watched.returncode == 1
    assert "asked to fail" in watched.stderr and f"machines retry {mid}" in watched.stderr
    assert cli(server, "send", mid, "TOUCH", "-m", "fail=false").returncode == 0
    retried = cli(server, "retry", mid, "--json")
    assert retried.returncode == 0
    assert json.loads(retried.stdout)["tasks"]["work"]["attempt"] == 2
    server.wait_for(mid, in_state("RUN"))


def test_cli_errors_are_messages_not_tracebacks(server: Server, tmp_path: Path) -> None:
    refused = cli(server, "send", "nobody", "LAUNCH")
    assert refused.returncode == 1
    assert "machine_not_found" in refused.stderr and "Traceback" not in refused.stderr
    bad = cli(server, "send", "x", "NEXT", "--spec", "jobs")
    assert bad.returncode == 1 and "reserved_event" in bad.stderr
    unreachable = subprocess.run(
        [STATEWRIGHT, "machines", "get", "x", "--endpoint", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr and "Traceback" not in unreachable.stderr
    malformed = cli(server, "create", "jobs", "-m", "novalue")
    assert malformed.returncode == 2 and "KEY=VALUE" in malformed.stderr


def test_cli_idempotency_key(server: Server) -> None:
    mid = "cli-" + uuid.uuid4().hex[:8]
    key = str(uuid.uuid4())
    first = cli(server, "create", "jobs", "--id", mid, "--idempotency-key", key, "--json")
    again = cli(server, "create", "jobs", "--id", mid, "--idempotency-key", key, "--json")
    assert first.returncode == again.returncode == 0
    assert json.loads(first.stdout) == json.loads(again.stdout)
