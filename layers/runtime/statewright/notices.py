"""Notices a deployment may leave unpublished: events put on the bus only for other
systems to subscribe to, which the control plane itself never reads back.

Each one put is an EventBridge event billed, so a deployment where no rule subscribes
to ``Machine State Changed`` turns it off (cdk.json ``notices.state_changed``; docs/aws.md,
"EventBridge"). The engine still decides them, and history still records every
transition; only the put is left out. Local mode publishes them all: its in-process bus
costs nothing."""

from __future__ import annotations

from collections.abc import Sequence

from statewright.model import BusEvent
from statewright.ports import Bus

STATE_CHANGED = "Machine State Changed"


class WithoutStateChanged:
    """A Bus that publishes everything but ``Machine State Changed``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def publish(self, events: Sequence[BusEvent]) -> None:
        kept = [event for event in events if event.detail_type != STATE_CHANGED]
        if kept:
            self._bus.publish(kept)
