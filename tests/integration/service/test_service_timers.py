"""Timers through the service over a real SQLite store (docs/runtime.md, "Timers"): the
write arms them, ``fire_timer`` applies them, and a stale timer writes nothing."""

from __future__ import annotations

from statewright.service import Outcome
from statewright.timers import Timer, TimerPurpose

from tests.integration.service.harness import Harness


def launched(h: Harness) -> None:
    h.service.create_machine("rich", "r")
    h.service.send_event("r", "LAUNCH")


def attempt_timers(h: Harness) -> list[Timer]:
    return [t for t in h.timers.armed.values() if t.purpose is TimerPurpose.ATTEMPT]


def test_a_backoff_is_a_timer_and_the_attempt_starts_only_when_it_fires(h: Harness) -> None:
    launched(h)
    assert h.finish("r", "compile", "failed", error="flaky") is Outcome.APPLIED
    [timer] = attempt_timers(h)
    assert timer.guard == {"task": "compile", "epoch": 2, "attempt": 2}
    started = [i.attempt for i in h.executors["lambda"].started if i.task == "compile"]
    assert started == [1]
    assert h.fire_timers(9.9) == []  # not yet due
    assert h.fire_timers(0.1) == [Outcome.APPLIED]
    started = [i.attempt for i in h.executors["lambda"].started if i.task == "compile"]
    assert started == [1, 2]
    record = h.service.get_machine("r").tasks["compile"]
    assert (record.status, record.attempt) == ("running", 2)


def test_a_timeout_timer_fails_the_attempt_stops_its_run_and_retries(h: Harness) -> None:
    launched(h)
    timeouts = [t for t in h.timers.armed.values() if t.purpose is TimerPurpose.TIMEOUT]
    assert sorted(t.guard["task"] for t in timeouts) == ["compile", "test"]
    assert h.fire_timers(900) == [Outcome.APPLIED, Outcome.APPLIED]  # lambda's default
    machine = h.service.get_machine("r")
    compile_, test = machine.tasks["compile"], machine.tasks["test"]
    assert (compile_.status, compile_.attempt) == ("pending", 2)  # retried, backing off
    assert (test.status, test.error_type) == ("failed", "Timeout")  # no retry policy
    assert sorted(h.executors["lambda"].cancelled) == ["lambda:r:2:compile:1", "lambda:r:2:test:1"]
    assert machine.status == "failed"


def test_a_stale_timer_writes_nothing(h: Harness) -> None:
    launched(h)
    h.finish("r", "compile", "failed")
    [backoff] = attempt_timers(h)
    h.service.send_event("r", "RESET")  # BUILD entered again during the backoff
    assert backoff.name in h.timers.disarmed
    before = h.service.get_machine("r")
    history = h.service.history("r")[0]
    h.clock.seconds += 60
    assert h.service.fire_timer(backoff) is Outcome.STALE
    assert h.service.get_machine("r") == before
    assert h.service.history("r")[0] == history
    # only the re-entered state's own first attempt started since
    assert [i.attempt for i in h.executors["lambda"].started if i.task == "compile"] == [1, 1]
    assert h.metrics.counts["timers_stale"] == 1


def test_a_timer_of_a_deleted_machine_is_stale(h: Harness) -> None:
    launched(h)
    h.finish("r", "compile", "failed")
    [backoff] = attempt_timers(h)
    h.service.send_event("r", "ABORT")  # GONE is terminal: the machine is deleted
    assert h.machine("r") is None
    assert h.service.fire_timer(backoff) is Outcome.STALE
