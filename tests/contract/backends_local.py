"""Store factories for the contract suite (local adapters): SqliteStore on a real SQLite
file in the test's tmp_path."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from statewright.local.sqlite_store import SqliteStore
from statewright.ports import Store

StoreFactory = Callable[[Path], AbstractContextManager[Store]]


@contextlib.contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = SqliteStore(tmp_path / "contract" / "statewright.sqlite3")
    try:
        yield store
    finally:
        store.close()


def break_sqlite_machine(store: SqliteStore, machine_id: str) -> None:
    """Overwrite a machine's stored document with one no version could read."""
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:
        db.execute("UPDATE machines SET body = ? WHERE id = ?", ('{"id": "cut', machine_id))


LOCAL_BACKENDS: dict[str, StoreFactory] = {"sqlite": sqlite_store}
