"""Who may release the lock a stopped local Terraform run left: only the next run on that
state, only when the lock is still that run's (statewright.local.terraform_locks). Real
files and real POSIX record locks, held from another process as Terraform holds them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.local.terraform_locks import (
    LOCK_INFO_FILE,
    STATE_FILE,
    STOPPED_RUN_FILE,
    note_stopped_run,
    release_stopped_lock,
)


def left_lock(state: Path, lock_id: str) -> None:
    """What a Terraform killed while holding the lock leaves: its lock info, no holder."""
    (state / STATE_FILE).write_text("{}")
    info = {"ID": lock_id, "Operation": "OperationTypeApply", "Who": "root@host"}
    (state / LOCK_INFO_FILE).write_text(json.dumps(info))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


@pytest.fixture
def holder(state: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding Terraform's record lock on the state file."""
    (state / STATE_FILE).write_text("{}")
    code = textwrap.dedent(
        f"""
        import fcntl, os, sys, time
        fd = os.open({str(state / STATE_FILE)!r}, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.wait()


def test_the_next_run_releases_the_lock_the_stopped_run_left(state: Path) -> None:
    started = time.time() - 1
    left_lock(state, "lock-of-run-1")
    assert note_stopped_run(state, "run-1", started) == "lock-of-run-1"
    assert release_stopped_lock(state)
    assert not (state / LOCK_INFO_FILE).exists()
    assert not (state / STOPPED_RUN_FILE).exists()


def test_a_lock_someone_took_since_is_left_alone(state: Path) -> None:
    left_lock(state, "lock-of-run-1")
    note_stopped_run(state, "run-1", time.time() - 1)
    left_lock(state, "lock-of-someone-else")  # another Terraform locked the state since
    assert not release_stopped_lock(state)
    assert json.loads((state / LOCK_INFO_FILE).read_text())["ID"] == "lock-of-someone-else"


def test_a_lock_older_than_the_stopped_run_is_not_its_own(state: Path) -> None:
    left_lock(state, "older-lock")
    assert note_stopped_run(state, "run-1", time.time() + 60) is None
    assert not release_stopped_lock(state)
    assert (state / LOCK_INFO_FILE).exists()


def test_a_lock_with_a_live_holder_is_never_released(
    state: Path, holder: subprocess.Popen[str]
) -> None:
    info = {"ID": "held", "Operation": "OperationTypeApply", "Who": "someone@else"}
    (state / LOCK_INFO_FILE).write_text(json.dumps(info))
    assert note_stopped_run(state, "run-1", time.time() - 1) is None  # not that run's
    # Even a note naming it (written before the holder came) releases nothing.
    (state / STOPPED_RUN_FILE).write_text(json.dumps({"run_id": "run-1", "lock_id": "held"}))
    assert not release_stopped_lock(state)
    assert (state / LOCK_INFO_FILE).exists()


def test_without_a_stopped_run_nothing_is_touched(state: Path) -> None:
    left_lock(state, "lock")
    assert not release_stopped_lock(state)
    assert (state / LOCK_INFO_FILE).exists()
