"""A schedule fire through the service over SQLite (docs/runtime.md#schedules): pages of
the spec's machines, one event to each machine the schedule applies to, each fire once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.engine import Outcome
from statewright.schedules import FAN_OUT_PAGE, ScheduleFire

from tests.integration.service.harness import Harness, make_harness
from tests.unit.engine.helpers import NOOP, advance, make_spec

SPEC = make_spec(
    "nightly",
    {
        "events": ["LAUNCH", "SLEEP", "WAKE", "DESTROY"],
        "states": {
            "INIT": {"on": {"LAUNCH": advance("RUN")}},
            "RUN": {"on": {"SLEEP": advance("ASLEEP"), "DESTROY": advance("END")}},
            "ASLEEP": {"on": {"WAKE": advance("RUN"), "SLEEP": NOOP}},
            "END": {"terminal": True},
        },
        "schedules": [
            {"name": "sleep", "cron": "0 19 * * *", "event": "SLEEP", "states": ["RUN"]},
            {"name": "wake", "cron": "0 7 * * *", "event": "WAKE"},
        ],
    },
)
OTHER = make_spec(
    "other",
    {"events": ["SLEEP"], "states": {"INIT": {"on": {"SLEEP": NOOP}}, "END": {"terminal": True}}},
)
FIRE = "2026-05-01T19:00:00Z"


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(tmp_path, [SPEC, OTHER])
    try:
        yield harness
    finally:
        harness.store.close()


def fan_out(h: Harness, schedule: str, fire: str = FIRE) -> int:
    """Every page of one fire; how many pages it took."""
    pages, token = 0, None
    while True:
        pages += 1
        token = h.service.fan_out_schedule(
            ScheduleFire(spec="nightly", schedule=schedule, fire=fire, after=token)
        )
        if token is None:
            return pages


def test_a_fire_reaches_every_machine_in_a_listed_state_once(h: Harness) -> None:
    running = [f"run-{i:03d}" for i in range(FAN_OUT_PAGE + 30)]
    for machine_id in running:
        h.service.send_event(machine_id, "LAUNCH", spec="nightly")
    h.service.create_machine("nightly", "waiting")  # INIT: SLEEP is not handled there
    h.service.create_machine("other", "elsewhere")  # another spec: never listed
    h.bus.events.clear()

    assert fan_out(h, "sleep") == 2  # the store's listing, in pages
    assert sorted(e.detail["machine_id"] for e in h.bus.events) == running
    # Delivered twice, as EventBridge may: each machine applies the fire once.
    outcomes = h.bus.deliver(h.service, times=2)
    assert outcomes.count(Outcome.APPLIED) == len(running)
    assert outcomes.count(Outcome.DUPLICATE) == len(running)
    for machine_id in running:
        machine = h.machine(machine_id)
        assert machine is not None and machine.state == "ASLEEP"
        entries, _ = h.service.history(machine_id)
        last_event = [e for e in entries if e.kind == "event"][-1]
        assert (last_event.event, last_event.source, last_event.actor) == (
            "SLEEP",
            "schedule:sleep",
            "schedule:sleep",
        )
    assert h.machine("waiting").state == "INIT"  # type: ignore[union-attr]
    assert h.machine("elsewhere").state == "INIT"  # type: ignore[union-attr]
    assert "schedule_fires" not in h.machine(running[0]).public()  # type: ignore[union-attr]


def test_the_next_fire_reaches_them_again_and_a_moved_machine_is_skipped(h: Harness) -> None:
    for machine_id in ("a", "b"):
        h.service.send_event(machine_id, "LAUNCH", spec="nightly")
    fan_out(h, "sleep")
    # Between listing and delivery, b moved on: the event is skipped, not refused.
    h.service.send_event("b", "DESTROY")
    assert h.bus.deliver(h.service) == [Outcome.APPLIED, Outcome.STALE]
    fan_out(h, "wake", "2026-05-02T07:00:00Z")  # wake has no `states`: ASLEEP handles it
    assert h.bus.deliver(h.service) == [Outcome.APPLIED]
    fan_out(h, "sleep", "2026-05-02T19:00:00Z")
    assert h.bus.deliver(h.service) == [Outcome.APPLIED]
    assert h.machine("a").state == "ASLEEP"  # type: ignore[union-attr]


def test_a_schedule_the_spec_no_longer_has_sends_nothing(h: Harness) -> None:
    h.service.send_event("a", "LAUNCH", spec="nightly")
    h.bus.events.clear()
    assert (
        h.service.fan_out_schedule(ScheduleFire(spec="nightly", schedule="gone", fire=FIRE)) is None
    )
    assert (
        h.service.fan_out_schedule(ScheduleFire(spec="nope", schedule="sleep", fire=FIRE)) is None
    )
    assert h.bus.events == []


def test_only_the_control_plane_sends_schedule_fires(h: Harness) -> None:
    h.service.send_event("a", "LAUNCH", spec="nightly")
    detail = {"machine_id": "a", "schedule": "sleep", "fire": FIRE, "event": "SLEEP"}
    assert h.service.handle_bus_event("someone", "Machine Event", detail) == Outcome.REFUSED
    bad_fire = {**detail, "fire": "2026-05-01T19:00:00"}  # no zone
    assert h.service.handle_bus_event("statewright", "Machine Event", bad_fire) == Outcome.REFUSED
    gone = {**detail, "machine_id": "never-created"}
    assert h.service.handle_bus_event("statewright", "Machine Event", gone) == Outcome.STALE
    assert h.machine("a").state == "RUN"  # type: ignore[union-attr]
