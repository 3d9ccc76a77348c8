"""A deployment without state-change notices: its bus drops ``Machine State Changed`` and
puts everything else, in order, and makes no call when nothing is left."""

from __future__ import annotations

from collections.abc import Sequence

from statewright.model import BusEvent, DetailType
from statewright.notices import WithoutStateChanged

from tests.fakes import RecordingBus


class CountingBus(RecordingBus):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def publish(self, events: Sequence[BusEvent]) -> None:
        self.calls += 1
        super().publish(events)


def _event(detail_type: DetailType, **detail: object) -> BusEvent:
    return BusEvent(detail_type=detail_type, detail={"machine_id": "m1", **detail})


def test_only_state_changes_are_dropped() -> None:
    inner = CountingBus()
    WithoutStateChanged(inner).publish(
        [
            _event("Machine State Changed", to="RUN"),
            _event("Machine Event", event="NEXT", epoch=3),
            _event("Machine Deleted"),
        ]
    )
    assert [e.detail_type for e in inner.events] == ["Machine Event", "Machine Deleted"]
    assert inner.calls == 1


def test_nothing_left_means_no_call() -> None:
    inner = CountingBus()
    WithoutStateChanged(inner).publish([_event("Machine State Changed", to="RUN")])
    assert inner.calls == 0 and inner.events == []
