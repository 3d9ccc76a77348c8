"""What the contract suite cannot say about SqliteStore: it is a real file in WAL mode,
it survives a restart, and two processes' worth of stores on one file stay consistent."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from statewright.local.sqlite_store import SqliteStore
from statewright.model import Machine
from statewright.ports import Write

NOW = "2026-01-01T00:00:00.000Z"


def machine(machine_id: str) -> Machine:
    return Machine(
        id=machine_id,
        spec="s",
        spec_digest="sha256:" + "0" * 64,
        state="INIT",
        version=1,
        metadata={"n": 0},
        created_at=NOW,
        updated_at=NOW,
    )


def test_the_database_is_a_wal_file_that_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "statewright.sqlite3"
    first = SqliteStore(path)
    first.create(machine("kept"))
    first.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second = SqliteStore(path)
    assert second.get("kept") == machine("kept")
    second.close()


def test_two_stores_on_one_file_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    stores = [SqliteStore(path), SqliteStore(path)]
    stores[0].create(machine("hot"))

    def bump(current: Machine) -> Write[None]:
        value = current.metadata["n"]
        assert isinstance(value, int)
        updated = current.model_copy(update={"metadata": {"n": value + 1}})
        return Write(result=None, machine=updated)

    def worker(store: SqliteStore) -> None:
        for _ in range(25):
            store.mutate("hot", bump)

    threads = [threading.Thread(target=worker, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    final = stores[1].get("hot")
    assert final is not None and final.metadata == {"n": 100} and final.version == 101
    for store in stores:
        store.close()


def test_short_lived_threads_do_not_pile_up_open_files(tmp_path: Path) -> None:
    # The local HTTP server serves each request on a new thread.
    store = SqliteStore(tmp_path / "fds.sqlite3")
    store.create(machine("m"))

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for _ in range(10):
        threads = [threading.Thread(target=store.get, args=("m",)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert open_files() - before < 20 * 3  # at most one pool's worth, not 200 connections
    store.close()
    assert open_files() <= before
