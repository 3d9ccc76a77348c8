"""What the contract suite cannot say about SqliteStore: it is a real file in WAL mode,
it survives a restart, and two processes' worth of stores on one file stay consistent."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from statewright.local.sqlite_store import SqliteStore
from statewright.model import Machine, TaskRecord
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


def test_a_data_dir_from_before_the_due_index_gets_it_filled_in(tmp_path: Path) -> None:
    # A database written by a version without the due column: one machine with a task
    # running (work for the recovery at start), one idle.
    path = tmp_path / "statewright.sqlite3"
    busy = machine("busy").model_copy(
        update={
            "tasks": {
                "t": TaskRecord(
                    executor="lambda", status="running", state="INIT", epoch=1, started_at=NOW
                )
            }
        }
    )
    idle = machine("idle").model_copy(update={"status": "waiting"})
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TABLE machines (id TEXT PRIMARY KEY, spec TEXT NOT NULL, "
            "state TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL)"
        )
        raw.executemany(
            "INSERT INTO machines VALUES (?, ?, ?, ?, ?)",
            [(m.id, m.spec, m.state, m.version, m.model_dump_json()) for m in (busy, idle)],
        )
    store = SqliteStore(path)
    assert [m.id for m in store.due_machines()] == ["busy"]
    assert store.get("idle") == idle
    store.close()
    # Opening it again changes nothing.
    again = SqliteStore(path)
    assert [m.id for m in again.due_machines()] == ["busy"]
    again.close()
