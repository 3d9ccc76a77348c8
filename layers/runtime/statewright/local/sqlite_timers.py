"""SqliteTimers: the local Timers adapter (statewright.ports.Timers), a ``timers`` table
in the same SQLite file as the store (docs/local.md, "Timers").

A timer is a row keyed by its name, so arming it again keeps one row. The timer thread
(statewright.local.timer_thread) reads the rows that are due, in due order, fires each
and only then removes it: a timer survives a crash until it has fired, and fires when
the server starts again."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from statewright.errors import ConfigurationError
from statewright.local.sqlite_store import BUSY_TIMEOUT_MS
from statewright.timers import Timer

# ``due`` is an ISO-8601 UTC time in one fixed format (engine.format_time), so text
# order is time order and the index serves "what is due, earliest first".
_SCHEMA = """
CREATE TABLE IF NOT EXISTS timers (
    name TEXT PRIMARY KEY,
    due TEXT NOT NULL,
    purpose TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_by_due ON timers (due, name);
"""


class SqliteTimers:
    def __init__(self, path: Path | str) -> None:
        """``path`` is the SQLite file the store uses (its folder is created)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used under a lock: the timer thread and the threads that arm
        # timers take turns (each statement is short).
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._lock = threading.Lock()
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise ConfigurationError(f"the timers of {self.path} are closed")
            yield self._conn

    def on_arm(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each ``arm`` (the timer thread wakes up to it)."""
        self._listeners.append(listener)

    # ---- the Timers port -----------------------------------------------------------

    def arm(self, timers: Sequence[Timer]) -> None:
        rows = [(t.name, t.due, t.purpose.value, t.machine_id, t.model_dump_json()) for t in timers]
        with self._db() as db:
            db.executemany(
                "INSERT OR IGNORE INTO timers (name, due, purpose, machine_id, body) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        for listener in self._listeners:
            listener()

    def disarm(self, names: Sequence[str]) -> None:
        with self._db() as db:
            db.executemany("DELETE FROM timers WHERE name = ?", [(n,) for n in names])

    # ---- for the timer thread --------------------------------------------------------

    def due(self, now: str, limit: int = 100) -> list[Timer]:
        """Up to ``limit`` timers due at ``now``, earliest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT body FROM timers WHERE due <= ? ORDER BY due, name LIMIT ?", (now, limit)
            ).fetchall()
        return [Timer.model_validate_json(body) for (body,) in rows]

    def next_due(self, besides: Collection[str] = ()) -> str | None:
        """The earliest due time of the timers kept, leaving out those named in
        ``besides``; None when there is none."""
        marks = ", ".join("?" * len(besides))
        query = f"SELECT MIN(due) FROM timers WHERE name NOT IN ({marks})"  # noqa: S608 - marks only
        with self._db() as db:
            row = db.execute(query, tuple(besides)).fetchone()
        return row[0] if row else None

    def remove(self, name: str) -> None:
        """Forget a timer that has fired."""
        self.disarm([name])

    def all(self) -> list[Timer]:
        """Every timer kept, earliest first."""
        with self._db() as db:
            rows = db.execute("SELECT body FROM timers ORDER BY due, name").fetchall()
        return [Timer.model_validate_json(body) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
