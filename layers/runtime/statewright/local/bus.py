"""The in-process bus: the local stand-in for EventBridge.

Published events go on a queue; worker threads hand ``Machine Event`` and
``Task Finished`` to the service (what the dispatcher's EventBridge rule does in AWS)
and every event to the subscribers (what other systems' rules would see), so ``watch``
and tests can observe ``Machine State Changed``, ``Machine Deleted`` and ``Machine
Expiring`` (logged at DEBUG too).

The queue lives in memory: a crash loses what was queued. That is by design, as in AWS
when a PutEvents is lost: the service's recovery re-publishes the NEXT of satisfied
states and restarts tasks that were pending or running."""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from statewright.model import BusEvent

logger = logging.getLogger(__name__)

Handler = Callable[[str, str, Mapping[str, Any]], object]
Subscriber = Callable[[BusEvent], None]

# What the service consumes; the rest (state changes, deletions) is outbound only.
INBOUND_DETAIL_TYPES = frozenset({"Machine Event", "Task Finished"})
# A handler that raises (a conflict past its deadline, say) gets the event again later,
# as EventBridge retries a failed target; these are the waits before each redelivery.
REDELIVERY_DELAYS = (0.5, 1.0, 2.0, 4.0)

_STOP = object()


class LocalBus:
    """A Bus (statewright.ports) delivering on ``workers`` threads.

    Call :meth:`bind` with the service's ``handle_bus_event`` (the service needs the bus
    to be built, so the two are tied after construction), then :meth:`start`."""

    def __init__(self, *, workers: int = 4) -> None:
        if workers < 1:
            raise ValueError("a bus needs at least one worker")
        self._workers = workers
        self._queue: queue.Queue[object] = queue.Queue()
        self._handler: Handler | None = None
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._timers: set[threading.Timer] = set()
        self._accepting = False
        self.delivered = 0
        self.handler_errors = 0

    # ---- wiring -------------------------------------------------------------------------

    def bind(self, handler: Handler) -> None:
        self._handler = handler

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every published event (on a worker thread); returns
        the function that unsubscribes it."""
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = subscriber

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    # ---- the Bus port -------------------------------------------------------------------

    def publish(self, events: Sequence[BusEvent]) -> None:
        with self._lock:
            if not self._accepting:
                # Stopped (or not started): the event is lost exactly as a crash would lose
                # it, and recovery on the next start makes up for it.
                logger.warning("bus is stopped; dropped %d event(s)", len(events))
                return
            self._in_flight += len(events)
        for event in events:
            self._queue.put((event, 0))

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._accepting = True
            self._threads = [
                threading.Thread(target=self._work, name=f"statewright-bus-{n}", daemon=True)
                for n in range(self._workers)
            ]
        for thread in self._threads:
            thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every published event (and what handling it published) has been
        delivered; False when ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``drain_timeout``), then stop the workers."""
        self.wait_idle(drain_timeout)
        with self._lock:
            self._accepting = False
            threads, self._threads = self._threads, []
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join(timeout=drain_timeout)

    # ---- workers ------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, tuple)
            event, deliveries = item
            done = True
            try:
                self._deliver(event)
            except Exception:
                # The worker is a process boundary: a failing handler must not stop the
                # delivery of every later event. The event comes again a few times.
                self.handler_errors += 1
                done = not self._redeliver_later(event, deliveries)
                logger.exception(
                    "handling %s for %s failed%s",
                    event.detail_type,
                    event.detail.get("machine_id"),
                    "" if done else "; it will be delivered again",
                )
            finally:
                if done:
                    self._settle()

    def _settle(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self.delivered += 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def _redeliver_later(self, event: BusEvent, deliveries: int) -> bool:
        if deliveries >= len(REDELIVERY_DELAYS):
            return False
        with self._lock:
            if not self._accepting:
                return False
            timer = threading.Timer(
                REDELIVERY_DELAYS[deliveries], self._requeue, args=(event, deliveries + 1)
            )
            timer.daemon = True
            self._timers.add(timer)
        timer.start()
        return True

    def _requeue(self, event: BusEvent, deliveries: int) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive()}
            accepting = self._accepting
        if accepting:
            self._queue.put((event, deliveries))
        else:
            self._settle()

    def _deliver(self, event: BusEvent) -> None:
        if event.detail_type in INBOUND_DETAIL_TYPES and self._handler is not None:
            outcome = self._handler(event.source, event.detail_type, event.detail)
            logger.debug("%s -> %s", event.detail_type, outcome)
        elif event.detail_type not in INBOUND_DETAIL_TYPES:
            # What other systems' rules would get; these details hold ids, states and
            # times, never metadata or task outputs.
            logger.debug("out: %s %s", event.detail_type, json.dumps(event.detail, sort_keys=True))
        with self._lock:
            subscribers = list(self._subscribers.values())
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                # An observer's bug must not keep the event from the other observers.
                logger.exception("bus subscriber failed on %s", event.detail_type)
