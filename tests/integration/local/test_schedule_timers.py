"""Schedules locally (docs/runtime.md#schedules): a SCHEDULE timer per spec schedule in
the SQLite timers table, fired by the timer thread, re-armed for the next fire; a fire
found more than a minute late is skipped. The clock is injected, so a schedule every
minute is tested without waiting for minutes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.catalog import SpecCatalog
from statewright.engine import add_seconds
from statewright.local.sqlite_store import SqliteStore
from statewright.local.sqlite_timers import SqliteTimers
from statewright.local.timer_thread import TimerThread
from statewright.schedules import schedule_timer
from statewright.service import Service
from statewright.timers import TimerPurpose

from tests.fakes import FakeExecutor, RecordingBus
from tests.integration.service.harness import Clock, Counter
from tests.unit.engine.helpers import NOOP, advance, make_spec

T0 = "2026-05-01T08:00:00.000Z"  # the harness clock's zero
SPEC = make_spec(
    "pinged",
    {
        "events": ["LAUNCH", "PING", "STOP"],
        "states": {
            "INIT": {"on": {"LAUNCH": advance("RUN"), "PING": NOOP}},
            "RUN": {"on": {"PING": NOOP, "STOP": advance("END")}},
            "END": {"terminal": True},
        },
        "schedules": [
            {"name": "every-minute", "cron": "* * * * *", "event": "PING", "states": ["RUN"]}
        ],
    },
)


class World:
    def __init__(self, tmp_path: Path) -> None:
        db = tmp_path / "data" / "statewright.db"
        self.store = SqliteStore(db)
        self.timers = SqliteTimers(db)
        self.bus = RecordingBus()
        self.clock = Clock(30.0)  # 08:00:30
        self.service = Service(
            store=self.store,
            bus=self.bus,
            executors={"lambda": FakeExecutor("lambda")},
            catalog=SpecCatalog([SPEC]),
            clock=self.clock,
            metrics=Counter(),
            timers=self.timers,
        )
        self.thread = TimerThread(self.timers, self.service.fire_timer, clock=self.clock)

    def at(self, seconds: float) -> int:
        """Move the clock, fire what is due, deliver what the fire published."""
        self.clock.seconds = seconds
        fired = self.thread.fire_due()
        self.bus.deliver(self.service)
        return fired

    def schedule_dues(self) -> list[str]:
        return sorted(
            t.due
            for t in self.timers.due(add_seconds(T0, 10**6), 100)
            if t.purpose is TimerPurpose.SCHEDULE
        )

    def pings(self, machine_id: str) -> int:
        entries, _ = self.service.history(machine_id)
        return sum(e.kind == "event" and e.source == "schedule:every-minute" for e in entries)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.timers.close()
        w.store.close()


def test_a_schedule_every_minute_reaches_each_listed_machine_once_per_fire(world: World) -> None:
    running = [f"m{i}" for i in range(5)]
    for machine_id in running:
        world.service.send_event(machine_id, "LAUNCH", spec="pinged")
    world.service.create_machine("pinged", "idle")  # INIT handles PING but is not listed
    world.service.arm_schedules()
    world.service.arm_schedules()  # a restart arms the same timer: still one
    assert world.schedule_dues() == ["2026-05-01T08:01:00.000Z"]

    assert world.at(59) == 0  # not due yet
    assert world.at(60) == 1
    assert [world.pings(m) for m in running] == [1] * 5
    assert world.schedule_dues() == ["2026-05-01T08:02:00.000Z"]  # re-armed
    assert world.at(125) == 1  # 5 s late: still fired
    assert [world.pings(m) for m in running] == [2] * 5
    assert world.pings("idle") == 0
    world.service.send_event("m0", "STOP")  # deleted: the next fire skips it
    assert world.at(180) == 1
    assert [world.pings(m) for m in running[1:]] == [3] * 4


def test_a_fire_missed_while_the_server_was_down_is_skipped(world: World) -> None:
    world.service.send_event("m1", "LAUNCH", spec="pinged")
    world.service.arm_schedules()
    # The server was down from 08:00:30 to 08:10:30: the 08:01 fire is ten minutes late.
    assert world.at(630) == 1
    assert world.pings("m1") == 0
    assert world.schedule_dues() == ["2026-05-01T08:11:00.000Z"]  # only the next is armed
    assert world.at(660) == 1
    assert world.pings("m1") == 1


def test_a_timer_of_a_changed_schedule_sends_nothing(world: World) -> None:
    world.service.send_event("m1", "LAUNCH", spec="pinged")
    schedule = SPEC.schedule("every-minute")
    assert schedule is not None
    # As if the spec's cron had changed since it was armed: not one of its fire times.
    world.timers.arm([schedule_timer("pinged", schedule, "2026-05-01T08:00:40.000Z")])
    assert world.at(41) == 1
    assert world.pings("m1") == 0
    assert world.schedule_dues() == []  # the start-up arming covers the schedule as it is
