"""The local timer thread: fires the timers of the SQLite ``timers`` table when they are
due (docs/local.md, "Timers").

It fires what is due in due order, removes each timer after it fired, then sleeps until
the next due time or until a timer is armed. On start it first fires what fell due while
the server was down. A fire that fails (a conflict past its deadline, say) leaves the
timer in the table and is tried again after a growing pause."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from statewright.local.sqlite_timers import SqliteTimers
from statewright.model import now_iso
from statewright.timers import Timer

logger = logging.getLogger(__name__)

# The longest sleep between two looks at the table: a wall clock that jumps (a laptop
# waking up) is noticed within this time.
MAX_SLEEP_SECONDS = 30.0
# Pauses before a failed fire is tried again (the last one repeats).
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 30.0)
# Timers read from the table per round.
BATCH = 100


class TimerThread:
    """Fires ``timers`` through ``fire`` (the service's ``fire_timer``). ``clock`` is the
    wall clock as the engine writes times and ``monotonic`` times the pauses after a
    failed fire (tests may inject both and call :meth:`fire_due` themselves)."""

    def __init__(
        self,
        timers: SqliteTimers,
        fire: Callable[[Timer], object],
        *,
        clock: Callable[[], str] = now_iso,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timers = timers
        self._fire = fire
        self._clock = clock
        self._monotonic = monotonic
        self._wake = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        # name -> (failures so far, monotonic time before which it is not tried again)
        self._failed: dict[str, tuple[int, float]] = {}
        self.fired = 0
        timers.on_arm(self.wake)

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="statewright-timers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the fire in progress (if any); timers not yet fired stay in the
        table for the next start."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        thread.join(timeout)

    def wake(self) -> None:
        """A timer was armed: look at the table again now (it may be due earlier than
        what the thread sleeps for)."""
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- firing --------------------------------------------------------------------

    def fire_due(self, now: str | None = None) -> int:
        """Fire every timer due at ``now`` (default: the clock), earliest first, and
        remove each after it fired. Returns how many fired."""
        fired = 0
        while not self._stopping:
            at = now if now is not None else self._clock()
            batch = [t for t in self._timers.due(at, BATCH) if not self._resting(t.name)]
            if not batch:
                return fired
            for timer in batch:
                if self._stopping:
                    break
                if self._fire_one(timer):
                    fired += 1
        return fired

    def _fire_one(self, timer: Timer) -> bool:
        try:
            self._fire(timer)
        except Exception:
            # The thread is a process boundary: one timer that cannot fire now (a
            # conflict past its deadline, a store error) must not stop the others. It
            # stays in the table and is tried again after a pause.
            failures = self._failed.get(timer.name, (0, 0.0))[0] + 1
            pause = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
            self._failed[timer.name] = (failures, self._monotonic() + pause)
            logger.exception(
                "%s timer %s of %s failed (try %d); trying again in %ss",
                timer.purpose,
                timer.name,
                timer.machine_id,
                failures,
                pause,
            )
            return False
        self._failed.pop(timer.name, None)
        self._timers.remove(timer.name)
        self.fired += 1
        return True

    def _resting(self, name: str) -> bool:
        failed = self._failed.get(name)
        return failed is not None and failed[1] > self._monotonic()

    # ---- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self.fire_due()
            with self._wake:
                if self._stopping:
                    return
                if not self._woken:
                    self._wake.wait(self._sleep_seconds())
                self._woken = False

    def _sleep_seconds(self) -> float:
        """Until the next timer is due (or a failed one may be tried again), at most
        MAX_SLEEP_SECONDS."""
        wait = MAX_SLEEP_SECONDS
        resting = [name for name in self._failed if self._resting(name)]
        due = self._timers.next_due(besides=resting)
        if due is not None:
            until = datetime.fromisoformat(due) - datetime.fromisoformat(self._clock())
            wait = min(wait, until.total_seconds())
        now = self._monotonic()
        for _, retry_at in self._failed.values():
            wait = min(wait, retry_at - now)
        return max(wait, 0.01)
