"""The local timers: the SQLite ``timers`` table (tested as SQLite, in the store's own
file) and the thread that fires it (docs/local.md, "Timers")."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from statewright.engine import add_seconds
from statewright.local.sqlite_store import SqliteStore
from statewright.local.sqlite_timers import SqliteTimers
from statewright.local.timer_thread import TimerThread
from statewright.model import now_iso
from statewright.ports import Timers
from statewright.timers import Timer, TimerPurpose, task_guard

T0 = "2026-05-01T08:00:00.000Z"


def timer(due: str, task: str = "t", machine_id: str = "m1") -> Timer:
    return Timer(
        purpose=TimerPurpose.ATTEMPT, machine_id=machine_id, due=due, guard=task_guard(task, 1, 2)
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "statewright.db"


@pytest.fixture
def timers(db: Path) -> SqliteTimers:
    table = SqliteTimers(db)
    port: Timers = table  # the adapter is checked against the port by mypy
    assert port is table
    return table


def rows(db: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT name, due, purpose, machine_id FROM timers ORDER BY due"
        ).fetchall()


# ---- the table ---------------------------------------------------------------------------


def test_timers_live_in_the_stores_sqlite_file_and_survive_a_reopen(db: Path) -> None:
    store = SqliteStore(db)
    table = SqliteTimers(db)
    early, late = timer(add_seconds(T0, 5)), timer(add_seconds(T0, 60), "u")
    table.arm([late, early])
    table.close()
    store.close()
    assert rows(db) == [
        (early.name, early.due, "attempt", "m1"),
        (late.name, late.due, "attempt", "m1"),
    ]
    again = SqliteTimers(db)
    assert again.all() == [early, late]


def test_arming_is_idempotent_per_name(timers: SqliteTimers, db: Path) -> None:
    one = timer(T0)
    timers.arm([one])
    timers.arm([one, one])
    assert [name for name, *_ in rows(db)] == [one.name]


def test_due_timers_come_earliest_first_and_later_ones_wait(timers: SqliteTimers) -> None:
    a, b, c = (timer(add_seconds(T0, s), f"t{s}") for s in (30, 10, 90))
    timers.arm([a, b, c])
    assert timers.due(add_seconds(T0, 30)) == [b, a]
    assert timers.due(add_seconds(T0, 5)) == []
    assert timers.next_due() == b.due
    assert timers.next_due(besides=[b.name]) == a.due
    timers.remove(b.name)
    assert timers.next_due() == a.due


def test_disarm_forgets_timers_and_unknown_names_are_no_error(timers: SqliteTimers) -> None:
    keep, drop = timer(T0, "keep"), timer(T0, "drop")
    timers.arm([keep, drop])
    timers.disarm([drop.name, "no-such-timer"])
    assert timers.all() == [keep]
    timers.disarm([])
    timers.arm([])


# ---- the thread --------------------------------------------------------------------------


class Recorder:
    """A fire callback: records timers, optionally failing for some."""

    def __init__(self, timers: SqliteTimers) -> None:
        self.timers = timers
        self.fired: list[Timer] = []
        self.kept_while_firing: list[bool] = []
        self.fail: set[str] = set()
        self.event = threading.Event()

    def __call__(self, fired: Timer) -> None:
        # a timer is removed only after it fired: a crash mid-fire fires it again
        self.kept_while_firing.append(fired in self.timers.all())
        if fired.name in self.fail:
            raise RuntimeError("cannot fire now")
        self.fired.append(fired)
        self.event.set()


def test_fire_due_fires_in_due_order_and_removes_each_after_it_fired(
    timers: SqliteTimers,
) -> None:
    recorder = Recorder(timers)
    thread = TimerThread(timers, recorder)
    late, early, future = (
        timer(add_seconds(T0, 20), "l"),
        timer(T0, "e"),
        timer(add_seconds(T0, 99), "f"),
    )
    timers.arm([late, early, future])
    assert thread.fire_due(add_seconds(T0, 30)) == 2
    assert recorder.fired == [early, late]
    assert recorder.kept_while_firing == [True, True]
    assert timers.all() == [future]


def test_a_failed_fire_keeps_the_timer_and_does_not_hold_up_the_others(
    timers: SqliteTimers,
) -> None:
    recorder = Recorder(timers)
    seconds = [0.0]
    thread = TimerThread(timers, recorder, monotonic=lambda: seconds[0])
    bad, good = timer(T0, "bad"), timer(add_seconds(T0, 1), "good")
    recorder.fail.add(bad.name)
    timers.arm([bad, good])
    assert thread.fire_due(add_seconds(T0, 5)) == 1
    assert recorder.fired == [good]
    assert timers.all() == [bad]
    # it rests a moment, then fires once it can
    recorder.fail.clear()
    assert thread.fire_due(add_seconds(T0, 5)) == 0
    seconds[0] += 0.5  # the first pause is over
    assert thread.fire_due(add_seconds(T0, 5)) == 1
    assert timers.all() == []


def test_the_thread_fires_at_start_what_fell_due_while_it_was_down(db: Path) -> None:
    overdue = timer(add_seconds(now_iso(), -3600))
    SqliteTimers(db).arm([overdue])  # armed by a process that is gone
    timers = SqliteTimers(db)
    recorder = Recorder(timers)
    thread = TimerThread(timers, recorder)
    thread.start()
    try:
        assert recorder.event.wait(10)
        assert recorder.fired == [overdue]
    finally:
        thread.stop()
    assert not thread.alive
    assert timers.all() == []


def test_arming_wakes_the_sleeping_thread_for_an_earlier_timer(timers: SqliteTimers) -> None:
    recorder = Recorder(timers)
    thread = TimerThread(timers, recorder)
    far = timer(add_seconds(now_iso(), 3600), "far")
    timers.arm([far])
    thread.start()
    try:
        soon = timer(add_seconds(now_iso(), 0.2), "soon")
        timers.arm([soon])  # the thread sleeps for `far`; this must wake it
        assert recorder.event.wait(10)
        assert recorder.fired == [soon]
        assert timers.all() == [far]
    finally:
        thread.stop()
    assert not thread.alive


def test_stop_ends_the_thread_and_keeps_what_has_not_fired(timers: SqliteTimers) -> None:
    thread = TimerThread(timers, Recorder(timers))
    later = timer(add_seconds(now_iso(), 3600))
    timers.arm([later])
    thread.start()
    assert thread.alive
    thread.stop()
    assert not thread.alive
    assert timers.all() == [later]
