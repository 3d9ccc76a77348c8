"""The Bus on EventBridge: PutEvents to the control plane's bus, ten entries a call.

PutEvents answers 200 even when some entries were not accepted (``FailedEntryCount``);
those are sent again, with a short backoff, and if some still fail a PublishError names
them. Raising is right here: the caller's write is committed and its effects are safe to
repeat, so Lambda's retry (or the reconciler) publishes them again."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic_core import to_json

from statewright.model import BusEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

BATCH_SIZE = 10  # PutEvents' limit


class PublishError(Exception):
    """EventBridge refused some entries after every retry."""

    def __init__(self, bus_name: str, failures: Sequence[tuple[BusEvent, str, str]]) -> None:
        described = "; ".join(
            f"{event.detail_type} for {event.detail.get('machine_id', '?')}: {code} {message}"
            for event, code, message in failures
        )
        super().__init__(
            f"EventBridge bus {bus_name} did not accept {len(failures)} event(s): {described}"
        )
        self.failures = list(failures)


class EventBridgeBus:
    def __init__(
        self,
        client: EventBridgeClient,
        bus_name: str,
        *,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.bus_name = bus_name
        self._attempts = attempts
        self._sleep = sleep

    def _entry(self, event: BusEvent) -> PutEventsRequestEntryTypeDef:
        return {
            "Source": event.source,
            "DetailType": event.detail_type,
            "Detail": to_json(event.detail).decode(),
            "EventBusName": self.bus_name,
        }

    def publish(self, events: Sequence[BusEvent]) -> None:
        for i in range(0, len(events), BATCH_SIZE):
            self._publish_batch(list(events[i : i + BATCH_SIZE]))

    def _publish_batch(self, batch: list[BusEvent]) -> None:
        pause = 0.05
        failures: list[tuple[BusEvent, str, str]] = []
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(pause)
                pause *= 4
            response = self._client.put_events(Entries=[self._entry(e) for e in batch])
            if not response.get("FailedEntryCount"):
                return
            # Results come back in the order of the entries sent.
            failures = []
            retry: list[BusEvent] = []
            for event, result in zip(batch, response["Entries"], strict=True):
                if "ErrorCode" in result:
                    failures.append((event, result["ErrorCode"], result.get("ErrorMessage", "")))
                    retry.append(event)
            batch = retry
        raise PublishError(self.bus_name, failures)
