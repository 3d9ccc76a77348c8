"""Scale: the time of one no-op event with 100 and with 100,000 machines stored.

Measured on the SQLite store (``statewright serve``'s), through ``Service.send_event``:
read the machine, decide, write it on condition of its version, append its history. It
is the store where size could show — a B-tree index over a file that outgrows SQLite's
page cache. DynamoDB finds an item by its partition key whatever the table's size, and
moto (a Python dict) could only confirm that about itself.

Both databases are filled through the store's own row format in one transaction: the
machine at rest in RUN (created, LAUNCHed, NEXT applied, by the engine) with its history,
copied under each id. Events then go to machines picked at random across each table, in
batches that alternate between the two databases, so a busy moment of the machine hits
both alike; a run's ratio is of its median batches. The whole run — fill, warm-up,
batches — is made several times and the median run's figures are reported (single runs
spread by tens of percent on a shared machine)."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import specs

SPEC = "bench-preview-env"
NOW = "2026-01-01T00:00:00.000Z"
SIZES = (100, 100_000)


def _at_rest(spec: Any) -> tuple[Any, list[Any]]:
    """A machine in RUN, as the engine leaves it, and its history so far."""
    from statewright import engine

    decision = engine.create(spec, engine.Create("template"), NOW)
    machine, history = decision.machine, list(decision.history)
    for inp in (engine.ExternalEvent("LAUNCH"), engine.InternalEvent("NEXT", 2)):
        decision = engine.decide(machine, spec, inp, NOW)
        machine = decision.machine.model_copy(update={"version": machine.version + 1})
        history += decision.history
    assert machine.state == "RUN" and machine.status == "waiting", machine
    return machine, history


def _fill(path: Path, spec: Any, count: int) -> list[str]:
    """``count`` machines at rest in RUN, in the store's tables, in one transaction."""
    from statewright.local.sqlite_store import SqliteStore

    store = SqliteStore(path)  # creates the schema (and sets WAL mode)
    store.put_spec(spec)
    store.close()
    machine, history = _at_rest(spec)
    body = machine.model_dump_json()
    entries = [(e.seq, e.model_dump_json()) for e in history]
    ids = [f"m{i:07d}" for i in range(count)]
    template_id = f'"id":"{machine.id}"'
    rows = (
        (
            mid,
            machine.spec,
            machine.state,
            machine.version,
            body.replace(template_id, f'"id":"{mid}"'),
        )
        for mid in ids
    )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO machines (id, spec, state, version, body) VALUES (?, ?, ?, ?, ?)", rows
        )
        conn.executemany(
            "INSERT INTO history (machine_id, seq, body) VALUES (?, ?, ?)",
            ((mid, seq, text) for mid in ids for seq, text in entries),
        )
        conn.execute("COMMIT")
        # Move the load out of the write-ahead log now, not during the measurement.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return ids


class _NoBus:
    def publish(self, events: Any) -> None:
        raise AssertionError("a no-op event on a machine at rest publishes nothing")


@dataclass
class _Table:
    size: int
    ids: list[str]
    service: Any
    path: Path
    fill_seconds: float
    times: list[float]

    def batch(self, picks: random.Random, events: int) -> float:
        chosen = [picks.choice(self.ids) for _ in range(events)]
        start = time.perf_counter()
        for machine_id in chosen:
            self.service.send_event(machine_id, specs.NOOP_EVENT)
        return (time.perf_counter() - start) / events


@contextlib.contextmanager
def _table(workdir: Path, spec: Any, size: int) -> Iterator[_Table]:
    from statewright.catalog import SpecCatalog
    from statewright.local.sqlite_store import SqliteStore
    from statewright.service import Service

    path = workdir / f"scaling-{size}.db"
    _remove(path)
    start = time.perf_counter()
    ids = _fill(path, spec, size)
    filled = time.perf_counter() - start
    store = SqliteStore(path)
    service = Service(store=store, bus=_NoBus(), executors={}, catalog=SpecCatalog([spec]))
    try:
        yield _Table(size, ids, service, path, filled, [])
    finally:
        store.close()
        _remove(path)


def _remove(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()


def _one_run(
    workdir: Path, spec: Any, sizes: tuple[int, int], events: int, batches: int, seed: int
) -> dict[str, Any]:
    picks = random.Random(seed)
    with _table(workdir, spec, sizes[0]) as small, _table(workdir, spec, sizes[1]) as large:
        database_mb = {str(t.size): t.path.stat().st_size / 1e6 for t in (small, large)}
        for table in (small, large):
            table.batch(picks, events // 2)  # warm-up
        for _ in range(batches):
            for table in (small, large):
                table.times.append(table.batch(picks, events))
        at_small = statistics.median(small.times)
        at_large = statistics.median(large.times)
        fill_seconds = {str(t.size): t.fill_seconds for t in (small, large)}
    return {
        "at_small": at_small,
        "at_large": at_large,
        "ratio": at_large / at_small,
        "database_mb": database_mb,
        "fill_seconds": fill_seconds,
    }


def run(
    workdir: Path,
    *,
    sizes: tuple[int, int] = SIZES,
    events: int = 250,
    batches: int = 21,
    runs: int = 5,
) -> dict[str, Any]:
    spec = specs.load(SPEC, specs.preview_env(noop=True), workdir / "scaling-specs")
    done = [_one_run(workdir, spec, sizes, events, batches, seed) for seed in range(runs)]
    median = sorted(done, key=lambda r: r["ratio"])[len(done) // 2]
    return {
        "store": "SQLite (statewright serve's store)",
        f"per_event_ms_at_{sizes[0]}": 1000 * median["at_small"],
        f"per_event_ms_at_{sizes[1]}": 1000 * median["at_large"],
        "ratio": median["ratio"],
        "run_ratios": [r["ratio"] for r in done],
        "runs": runs,
        "sizes": list(sizes),
        "events_per_batch": events,
        "batches": batches,
        "fill_seconds": median["fill_seconds"],
        "database_mb": median["database_mb"],
    }
