"""The reference model against the Service on SqliteStore (the local control plane's
store), with the local server's recovery (restart_running)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from statewright.local.sqlite_store import SqliteStore
from statewright.ports import Store

from tests.reliability.model.runner import run_model


def open_sqlite() -> tuple[Store, Callable[[], None]]:
    folder = Path(tempfile.mkdtemp(prefix="statewright-model-"))
    store = SqliteStore(folder / "statewright.sqlite3")

    def close() -> None:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)

    return store, close


def test_the_service_on_sqlite_agrees_with_the_model() -> None:
    figures = run_model("model-sqlite", open_sqlite, local=True, examples=(20, 300))
    assert figures["crashes"] > 0 and figures["interleavings"] > 0
