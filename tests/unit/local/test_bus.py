"""The in-process bus: delivery to the service and to subscribers, on worker threads."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from statewright.local import bus as bus_module
from statewright.local.bus import LocalBus
from statewright.model import BusEvent


def event(detail_type: str = "Machine Event", **detail: Any) -> BusEvent:
    return BusEvent(detail_type=detail_type, detail={"machine_id": "m1", **detail})


@pytest.fixture
def bus() -> LocalBus:
    b = LocalBus(workers=3)
    yield b
    b.stop(drain_timeout=2)


def test_inbound_events_reach_the_handler_and_every_event_the_subscribers(bus: LocalBus) -> None:
    handled: list[tuple[str, str, Mapping[str, Any]]] = []
    seen: list[str] = []
    lock = threading.Lock()

    def handler(source: str, detail_type: str, detail: Mapping[str, Any]) -> str:
        with lock:
            handled.append((source, detail_type, detail))
        return "applied"

    bus.bind(handler)
    bus.subscribe(lambda e: seen.append(e.detail_type))
    bus.start()
    bus.publish(
        [
            event("Machine Event", event="NEXT", epoch=2),
            event("Task Finished", task="t"),
            event("Machine State Changed", to="RUN"),
            event("Machine Deleted"),
        ]
    )
    assert bus.wait_idle(5)
    assert sorted(t for _, t, _ in handled) == ["Machine Event", "Task Finished"]
    assert all(source == "statewright" for source, _, _ in handled)
    assert sorted(seen) == sorted(
        ["Machine Event", "Task Finished", "Machine State Changed", "Machine Deleted"]
    )


def test_a_failing_handler_does_not_stop_the_workers(
    bus: LocalBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_module, "REDELIVERY_DELAYS", (0.01, 0.01))
    handled: list[int] = []

    def handler(source: str, detail_type: str, detail: Mapping[str, Any]) -> None:
        if detail["n"] % 2:
            raise RuntimeError("handler bug")
        handled.append(detail["n"])

    bus.bind(handler)
    bus.start()
    bus.publish([event(n=n) for n in range(20)])
    assert bus.wait_idle(5)
    assert sorted(handled) == list(range(0, 20, 2))
    assert bus.handler_errors == 10 * 3  # each bad event: delivered, then twice again
    bus.publish([event(n=100)])
    assert bus.wait_idle(5)
    assert 100 in handled


def test_an_event_whose_handler_raised_is_delivered_again(
    bus: LocalBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As EventBridge retries a target that failed (a conflict past its deadline)."""
    monkeypatch.setattr(bus_module, "REDELIVERY_DELAYS", (0.05, 0.05, 0.05))
    calls: list[int] = []

    def handler(source: str, detail_type: str, detail: Mapping[str, Any]) -> None:
        calls.append(detail["n"])
        if len(calls) < 3:
            raise RuntimeError("conflict past its deadline")

    seen: list[BusEvent] = []
    bus.bind(handler)
    bus.subscribe(seen.append)
    bus.start()
    bus.publish([event(n=7)])
    assert bus.wait_idle(5)
    assert calls == [7, 7, 7]
    assert len(seen) == 1  # observers see it once: when it was handled


def test_a_failing_subscriber_does_not_hide_the_event_from_others(bus: LocalBus) -> None:
    seen: list[str] = []

    def bad(e: BusEvent) -> None:
        raise ValueError("observer bug")

    bus.subscribe(bad)
    unsubscribe = bus.subscribe(lambda e: seen.append(e.detail["machine_id"]))
    bus.start()
    bus.publish([event("Machine Deleted")])
    assert bus.wait_idle(5)
    assert seen == ["m1"]
    unsubscribe()
    bus.publish([event("Machine Deleted")])
    assert bus.wait_idle(5)
    assert seen == ["m1"]


def test_wait_idle_covers_events_published_while_handling(bus: LocalBus) -> None:
    """A handler that publishes (the service publishing NEXT) keeps the bus busy."""
    handled: list[int] = []

    def handler(source: str, detail_type: str, detail: Mapping[str, Any]) -> None:
        handled.append(detail["n"])
        if detail["n"] < 50:
            bus.publish([event(n=detail["n"] + 1)])

    bus.bind(handler)
    bus.start()
    bus.publish([event(n=0)])
    assert bus.wait_idle(10)
    assert handled == list(range(51))


def test_stop_delivers_what_is_queued_then_drops_later_events() -> None:
    bus = LocalBus(workers=1)
    handled: list[int] = []
    bus.bind(lambda s, t, d: handled.append(d["n"]))
    bus.start()
    bus.publish([event(n=n) for n in range(5)])
    bus.stop(drain_timeout=5)
    assert handled == [0, 1, 2, 3, 4]
    bus.publish([event(n=9)])  # after stop: lost, as in a crash (recovery makes up for it)
    assert handled == [0, 1, 2, 3, 4]
