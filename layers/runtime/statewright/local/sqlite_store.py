"""SqliteStore: the local control plane's Store, one SQLite file in WAL mode.

Each operation borrows a connection from a small pool; every conditional write is one
``BEGIN IMMEDIATE`` transaction, so the version check and the write happen under
SQLite's single writer lock, and ``busy_timeout`` makes concurrent writers queue instead
of failing."""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from statewright.due import due_at
from statewright.errors import ConfigurationError, MachineExists, VersionConflict
from statewright.model import HistoryEntry, Machine
from statewright.page_tokens import local_key
from statewright.ports import IdempotencyRecord, Position, Store
from statewright.spec.models import Spec

BUSY_TIMEOUT_MS = 30_000
PAGE_TOKEN_KEY_FILE = "page-token.key"  # noqa: S105 - a file name, not a secret
"""Beside the database: the secret that signs this data dir's page tokens."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS machines (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    due TEXT
);
CREATE INDEX IF NOT EXISTS machines_by_spec_state ON machines (spec, state, id);
CREATE INDEX IF NOT EXISTS machines_by_state ON machines (state, id);
CREATE TABLE IF NOT EXISTS history (
    machine_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (machine_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS specs (
    digest TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"""
# The sparse due index (statewright.due): a partial index holds only the rows of machines
# with work, so the reconciler's query never touches an idle machine's row.
_DUE_INDEX = """
CREATE INDEX IF NOT EXISTS machines_due ON machines (due, id) WHERE due IS NOT NULL;
"""


class SqliteStore(Store):
    def __init__(
        self,
        path: Path | str,
        *,
        wall_clock: Callable[[], float] = time.time,
        **protocol: Any,
    ) -> None:
        """``path`` is the database file (its folder is created); ``protocol`` goes to
        Store (deadline_seconds, clock, sleep)."""
        super().__init__(**protocol)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wall_clock = wall_clock
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        self._closed = False
        with self._read() as conn:
            conn.executescript(_SCHEMA)
            _add_due_column(conn)
            conn.executescript(_DUE_INDEX)

    # ---- connections ------------------------------------------------------------------
    # A pool rather than one connection per thread: the local HTTP server runs each
    # request on a new thread, and per-thread connections would pile up open files.

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes use BEGIN IMMEDIATE.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection of the pool, for this thread alone until the block ends."""
        with self._lock:
            if self._closed:
                raise ConfigurationError(f"the store {self.path} is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding SQLite's write lock from its first statement, so a
        version check and the write it guards cannot interleave with another writer.
        Writers of this process queue on a lock of their own first: SQLite makes a
        writer that finds the database locked sleep and poll (its busy handler backs off
        by milliseconds), which under concurrent requests cost more than the writes."""
        with self._writer, self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every idle connection; connections in use close when released."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ---- machines ---------------------------------------------------------------------

    def get(self, machine_id: str) -> Machine | None:
        with self._read() as db:
            found = db.execute("SELECT body FROM machines WHERE id = ?", (machine_id,)).fetchone()
        return Machine.model_validate_json(found[0]) if found else None

    def create(self, machine: Machine, history: Sequence[HistoryEntry] = ()) -> None:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO machines (id, spec, state, version, body, due) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        machine.id,
                        machine.spec,
                        machine.state,
                        machine.version,
                        _body(machine),
                        due_at(machine),
                    ),
                )
                # A machine deleted and created again under the same id starts afresh.
                db.execute("DELETE FROM history WHERE machine_id = ?", (machine.id,))
                _insert_history(db, machine.id, history)
        except sqlite3.IntegrityError as exc:
            raise MachineExists(f"machine {machine.id} already exists") from exc

    def update(
        self, machine: Machine, expected_version: int, history: Sequence[HistoryEntry] = ()
    ) -> None:
        body = _body(machine)
        due = due_at(machine)
        with self._write() as db:
            # Many writes leave the state, the spec and the due time as they were. Naming
            # them in SET would rewrite the indexes' entries anyway — several pages
            # instead of one — so they are set only when the row's values differ.
            cursor = db.execute(
                "UPDATE machines SET version = ?, body = ? "
                "WHERE id = ? AND version = ? AND spec = ? AND state = ? AND due IS ?",
                (
                    machine.version,
                    body,
                    machine.id,
                    expected_version,
                    machine.spec,
                    machine.state,
                    due,
                ),
            )
            if cursor.rowcount != 1:
                cursor = db.execute(
                    "UPDATE machines SET spec = ?, state = ?, version = ?, body = ?, due = ? "
                    "WHERE id = ? AND version = ?",
                    (
                        machine.spec,
                        machine.state,
                        machine.version,
                        body,
                        due,
                        machine.id,
                        expected_version,
                    ),
                )
            if cursor.rowcount != 1:
                raise VersionConflict(machine.id, _current(db, machine.id))
            _insert_history(db, machine.id, history)

    def delete(self, machine_id: str, expected_version: int) -> None:
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM machines WHERE id = ? AND version = ?",
                (machine_id, expected_version),
            )
            if cursor.rowcount != 1:
                raise VersionConflict(machine_id, _current(db, machine_id))
            db.execute("DELETE FROM history WHERE machine_id = ?", (machine_id,))

    def machines_after(
        self, *, spec: str | None, state: str | None, limit: int, after: Position | None
    ) -> tuple[list[tuple[Machine, Position]], Position | None]:
        clauses, params = ["id > ?"], [after["id"] if after is not None else ""]
        if spec is not None:
            clauses.append("spec = ?")
            params.append(spec)
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        query = (
            f"SELECT id, body FROM machines WHERE {' AND '.join(clauses)} "  # noqa: S608 - fixed clauses
            "ORDER BY id LIMIT ?"
        )
        with self._read() as db:
            rows = db.execute(query, (*params, limit + 1)).fetchall()
        page = []
        for id_, body in rows[:limit]:
            machine = self.listed(id_, functools.partial(Machine.model_validate_json, body))
            if machine is not None:
                page.append((machine, {"id": id_}))
        # The next page starts after the last row read, listed or not.
        return page, ({"id": rows[limit - 1][0]} if len(rows) > limit else None)

    def due_after(
        self, *, until: str | None, limit: int, after: Position | None
    ) -> tuple[list[Machine], Position | None]:
        # Keyset paging over the partial index, in (due, id) order.
        clauses, params = ["due IS NOT NULL"], []
        if until is not None:
            clauses.append("due <= ?")
            params.append(until)
        if after is not None:
            clauses.append("(due, id) > (?, ?)")
            params += [after["due"], after["id"]]
        query = (
            f"SELECT id, due, body FROM machines WHERE {' AND '.join(clauses)} "  # noqa: S608 - fixed clauses
            "ORDER BY due, id LIMIT ?"
        )
        with self._read() as db:
            rows = db.execute(query, (*params, limit + 1)).fetchall()
        page = rows[:limit]
        rest = {"due": page[-1][1], "id": page[-1][0]} if len(rows) > limit else None
        machines = [
            self.listed(id_, functools.partial(Machine.model_validate_json, body))
            for id_, _, body in page
        ]
        return [machine for machine in machines if machine is not None], rest

    def history_after(
        self, machine_id: str, *, limit: int, after_seq: int
    ) -> tuple[list[HistoryEntry], bool]:
        with self._read() as db:
            rows = db.execute(
                "SELECT seq, body FROM history WHERE machine_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (machine_id, after_seq, limit + 1),
            ).fetchall()
        return [HistoryEntry.model_validate_json(body) for _, body in rows[:limit]], (
            len(rows) > limit
        )

    def page_token_key(self) -> bytes:
        return local_key(self.path.parent / PAGE_TOKEN_KEY_FILE)

    # ---- specs ------------------------------------------------------------------------

    def put_spec(self, spec: Spec) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO specs (digest, body) VALUES (?, ?)",
                (spec.digest, spec.model_dump_json()),
            )

    def get_spec(self, digest: str) -> Spec | None:
        with self._read() as db:
            row = db.execute("SELECT body FROM specs WHERE digest = ?", (digest,)).fetchone()
        return Spec.model_validate_json(row[0]) if row else None

    # ---- idempotency ------------------------------------------------------------------

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        with self._read() as db:
            row = db.execute(
                "SELECT key, fingerprint, status, body, headers, expires_at FROM idempotency "
                "WHERE key = ? AND expires_at > ?",
                (key, int(self._wall_clock())),
            ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            key=row[0],
            fingerprint=row[1],
            status=row[2],
            body=json.loads(row[3]),
            headers=json.loads(row[4]),
            expires_at=row[5],
        )

    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO idempotency (key, fingerprint, status, body, headers, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "status = excluded.status, body = excluded.body, headers = excluded.headers, "
                "expires_at = excluded.expires_at WHERE idempotency.expires_at <= ?",
                (
                    record.key,
                    record.fingerprint,
                    record.status,
                    json.dumps(record.body),
                    json.dumps(record.headers),
                    record.expires_at,
                    int(self._wall_clock()),
                ),
            )
            # Expired records are garbage: drop a few per write so the table stays small.
            db.execute(
                "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency "
                "WHERE expires_at <= ? LIMIT 16)",
                (int(self._wall_clock()),),
            )
            return cursor.rowcount == 1

    def drop_idempotency_records(self, status: int) -> int:
        """Delete the records of one ``status`` (the API's in-progress claims); the count.
        Only the process that owns the data dir calls it, at start: a claim found then
        was left by a process that died before answering, and would otherwise hold its
        key (answering 503) until it expires."""
        with self._write() as db:
            return db.execute("DELETE FROM idempotency WHERE status = ?", (status,)).rowcount


def _add_due_column(db: sqlite3.Connection) -> None:
    """A data dir written before the due index existed: add its column, and fill it in
    for every machine already stored (once, when the store first opens the file)."""
    if _has_due_column(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if _has_due_column(db):  # another process added it meanwhile
            db.execute("COMMIT")
            return
        db.execute("ALTER TABLE machines ADD COLUMN due TEXT")
        rows = db.execute("SELECT id, body FROM machines").fetchall()
        db.executemany(
            "UPDATE machines SET due = ? WHERE id = ?",
            [(due_at(Machine.model_validate_json(body)), id_) for id_, body in rows],
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _has_due_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "due" for row in db.execute("PRAGMA table_info(machines)"))


def _body(machine: Machine) -> str:
    return machine.model_dump_json()


def _current(db: sqlite3.Connection, machine_id: str) -> Machine | None:
    row = db.execute("SELECT body FROM machines WHERE id = ?", (machine_id,)).fetchone()
    return Machine.model_validate_json(row[0]) if row else None


def _insert_history(
    db: sqlite3.Connection, machine_id: str, history: Sequence[HistoryEntry]
) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO history (machine_id, seq, body) VALUES (?, ?, ?)",
        [(machine_id, entry.seq, entry.model_dump_json()) for entry in history],
    )
