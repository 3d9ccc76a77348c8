"""The local page-token key: a file in the data dir, readable by its owner only, shared
by every process on that data dir; tokens of another data dir are refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from statewright.errors import ConfigurationError, InvalidRequest
from statewright.local.sqlite_store import PAGE_TOKEN_KEY_FILE, SqliteStore
from statewright.model import Machine


def filled(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    for i in range(3):
        store.create(Machine(id=f"m-{i}", spec="s", spec_digest="d", state="INIT", version=1))
    return store


def test_the_key_file_is_made_on_first_use_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = filled(tmp_path / "data" / "statewright.sqlite3")
    key_file = tmp_path / "data" / PAGE_TOKEN_KEY_FILE
    assert not key_file.exists()  # nothing paged yet
    _page, token = store.list_machines(limit=1)
    assert token is not None
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32
    again = SqliteStore(tmp_path / "data" / "statewright.sqlite3")
    assert [m.id for m in again.list_machines(limit=1, next_token=token)[0]] == ["m-1"]


def test_a_token_of_another_data_dir_is_refused(tmp_path: Path) -> None:
    one = filled(tmp_path / "one" / "statewright.sqlite3")
    two = filled(tmp_path / "two" / "statewright.sqlite3")
    _page, token = one.list_machines(limit=1)
    with pytest.raises(InvalidRequest, match="next_token"):
        two.list_machines(limit=1, next_token=token)


def test_a_damaged_key_file_says_how_to_mend_it(tmp_path: Path) -> None:
    store = filled(tmp_path / "statewright.sqlite3")
    (tmp_path / PAGE_TOKEN_KEY_FILE).write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="delete it"):
        store.list_machines(limit=1)
