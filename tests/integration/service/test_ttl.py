"""The service's part of docs/runtime.md, "TTL": ttl on create and on POST /ttl (parsed and
checked before anything is stored), timers kept through the Timers port (FakeTimers,
fired at an injected time), the expire event travelling the bus with reason expiry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.errors import InvalidRequest
from statewright.timers import TimerPurpose

from tests.integration.service.harness import Harness, make_harness
from tests.unit.engine.helpers import PREVIEW
from tests.unit.engine.test_ttl import TTL_SPEC

HOUR = 3600


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(tmp_path, [TTL_SPEC, PREVIEW])
    try:
        yield harness
    finally:
        harness.store.close()


def to_run(h: Harness, machine_id: str = "m1", ttl: str | None = None) -> None:
    h.service.create_machine("ttl", machine_id, ttl=ttl)
    h.service.send_event(machine_id, "LAUNCH")
    h.finish(machine_id, "setup")
    h.bus.deliver(h.service)
    machine = h.machine(machine_id)
    assert machine is not None and machine.state == "RUN"


def history(h: Harness, machine_id: str) -> list[tuple[str, str | None, str | None]]:
    entries, _ = h.service.history(machine_id, limit=1000)
    return [(e.kind, e.source, e.actor) for e in entries]


def test_a_create_parses_its_ttl_and_refuses_a_bad_one_storing_nothing(h: Harness) -> None:
    machine = h.service.create_machine("ttl", "short", ttl="2h")
    assert machine.expires_at == "2026-05-01T10:00:00.000Z"
    assert sorted(t.purpose.value for t in h.timers.armed.values()) == [
        "expiry",
        "warning",
        "warning",
    ]
    with pytest.raises(InvalidRequest, match=r"ttl: `2 hours` is not a duration.* e\.g\. 90s"):
        h.service.create_machine("ttl", "bad", ttl="2 hours")
    with pytest.raises(InvalidRequest, match="max_ttl is 3d"):
        h.service.create_machine("ttl", "long", ttl="4d")
    with pytest.raises(InvalidRequest, match="no lifecycle"):
        h.service.create_machine("preview-env", "plain", ttl="1h")
    assert [h.machine(m) for m in ("bad", "long", "plain")] == [None, None, None]


def test_warnings_then_expiry_destroy_the_machine_through_the_bus(h: Harness) -> None:
    to_run(h)
    h.fire_timers(7 * HOUR)
    assert h.bus.of_type("Machine Expiring") == [
        {
            "machine_id": "m1",
            "spec": "ttl",
            "state": "RUN",
            "expires_at": "2026-05-01T16:00:00.000Z",
            "in_seconds": HOUR,
        }
    ]
    h.fire_timers(50 * 60)
    assert [d["in_seconds"] for d in h.bus.of_type("Machine Expiring")] == [HOUR, 600]
    h.fire_timers(10 * 60)
    machine = h.machine("m1")
    assert machine is not None and machine.expired
    h.bus.deliver(h.service)  # the expire event, reason expiry
    machine = h.machine("m1")
    assert machine is not None and machine.state == "TEARDOWN"
    entries = history(h, "m1")
    assert entries[entries.index(("expiring", "expiry", "expiry")) :] == [
        ("expiring", "expiry", "expiry"),
        ("expiring", "expiry", "expiry"),
        ("expired", "expiry", "expiry"),
        ("event", "expiry", "expiry"),
        ("transition", None, "expiry"),
        ("task_started", None, "statewright"),
    ]
    h.finish("m1", "teardown")
    assert h.machine("m1") is None


def test_a_new_ttl_rearms_and_the_old_timers_are_disarmed(h: Harness) -> None:
    to_run(h)
    old = {t.name for t in h.timers.armed.values()}
    h.clock.seconds += HOUR
    machine = h.service.set_ttl("m1", "1d", caller="ana")
    assert machine.expires_at == "2026-05-02T09:00:00.000Z" and not machine.expired
    assert old <= set(h.timers.disarmed)
    assert {t.guard["expires_at"] for t in h.timers.armed.values()} == {machine.expires_at}
    assert h.fire_timers(20 * HOUR) == []  # the old expiry (at 16:00) is gone
    assert history(h, "m1")[-1] == ("ttl_changed", "api", "ana")
    with pytest.raises(InvalidRequest, match="ttl: `soon` is not a duration"):
        h.service.set_ttl("m1", "soon")


def test_an_extend_on_event_moves_the_expiry(h: Harness) -> None:
    to_run(h)
    h.clock.seconds += 5 * HOUR
    machine = h.service.send_event("m1", "TOUCH")
    assert machine.expires_at == "2026-05-01T21:00:00.000Z"
    h.fire_timers(3 * HOUR)  # the first expiry time (16:00) passes: nothing happens
    machine = h.machine("m1")
    assert machine is not None and not machine.expired and machine.state == "RUN"


def test_create_on_first_event_takes_a_ttl(h: Harness) -> None:
    machine = h.service.send_event("pr-1", "LAUNCH", spec="ttl", ttl="30m")
    assert machine.expires_at == "2026-05-01T08:30:00.000Z"
    assert machine.state == "PROVISION"


def test_reason_expiry_from_a_foreign_source_is_an_ordinary_bus_event(h: Harness) -> None:
    to_run(h)
    detail = {"machine_id": "m1", "event": "DESTROY", "epoch": 3, "reason": "expiry"}
    h.service.handle_bus_event("my.app", "Machine Event", detail)
    machine = h.machine("m1")
    assert machine is not None and machine.state == "TEARDOWN" and not machine.expired
    assert history(h, "m1")[-2][1:] == (None, "bus:my.app")


def test_the_expiry_timer_of_a_deleted_machine_is_stale(h: Harness) -> None:
    to_run(h)
    expiry_timer = next(t for t in h.timers.armed.values() if t.purpose is TimerPurpose.EXPIRY)
    h.service.send_event("m1", "DESTROY")
    h.finish("m1", "teardown")
    assert h.machine("m1") is None
    assert expiry_timer.name in h.timers.disarmed
    assert h.service.fire_timer(expiry_timer).value == "stale"
