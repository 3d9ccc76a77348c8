"""Timers in the engine (docs/runtime.md, "Timers"): a retry's backoff arms an ATTEMPT
timer that starts the attempt when it fires; a running attempt arms a TIMEOUT timer that
fails it with Timeout; a timer whose guard no longer holds is stale and writes nothing."""

from __future__ import annotations

import re

import pytest
from statewright import engine
from statewright.engine import CancelTask, DisarmTimer, Outcome, Retry, TimerFired
from statewright.timers import Timer, TimerPurpose, task_guard

from tests.unit.engine.helpers import RICH, T0, Run, armed, kinds, starts, system_events


def launched() -> Run:
    run = Run(RICH)
    run.event("LAUNCH")
    return run


def in_soak() -> Run:
    """SOAKING runs `soak` (terraform, timeout 60 s, no retry)."""
    run = launched()
    run.complete("compile", "test")
    run.system("NEXT")
    run.event("SOAK")
    return run


def disarmed(decision: engine.Decision) -> list[str]:
    return [e.name for e in decision.effects if isinstance(e, DisarmTimer)]


# ---- the timer itself ------------------------------------------------------------------


def test_a_timer_name_is_deterministic_short_and_scheduler_safe() -> None:
    timer = Timer(
        purpose=TimerPurpose.ATTEMPT,
        machine_id="a-very-long-machine-id." + "x" * 100,
        due="2026-03-01T12:00:10.000Z",
        guard=task_guard("compile", 2, 2),
    )
    again = Timer.model_validate(timer.model_dump(mode="json"))
    assert timer.name == again.name
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", timer.name)
    assert timer.name.startswith("attempt-a-very-long-machine-id")
    # anything that differs, the due time included, makes another timer
    for change in (
        {"purpose": TimerPurpose.TIMEOUT},
        {"machine_id": "other"},
        {"due": "2026-03-01T12:00:11.000Z"},
        {"guard": task_guard("compile", 2, 3)},
    ):
        assert timer.model_copy(update=change).name != timer.name


def test_a_due_time_is_kept_in_the_engines_one_format() -> None:
    timer = Timer(
        purpose=TimerPurpose.TIMEOUT, machine_id="m", due="2026-03-01T13:00:10+01:00", guard={}
    )
    assert timer.due == "2026-03-01T12:00:10.000Z"
    assert timer.target_input() == {
        "statewright_timer": {
            "purpose": "timeout",
            "machine_id": "m",
            "due": "2026-03-01T12:00:10.000Z",
            "guard": {},
        }
    }
    with pytest.raises(ValueError, match="time zone"):
        Timer(purpose=TimerPurpose.TIMEOUT, machine_id="m", due="2026-03-01T12:00:10", guard={})


# ---- retry backoff ---------------------------------------------------------------------


def test_a_backoff_waits_on_a_timer_and_its_fire_starts_the_attempt() -> None:
    run = launched()
    run.start()
    failed = run.finish("compile", "failed", error="E1")
    assert starts(failed) == []
    [timer] = armed(failed)
    assert timer.purpose is TimerPurpose.ATTEMPT
    assert timer.due == run.machine.tasks["compile"].not_before == engine.add_seconds(T0, 10)

    fired = run.fire(timer)
    assert fired.outcome is Outcome.APPLIED and fired.machine is None  # nothing written
    [start] = starts(fired)
    assert (start.invocation.task, start.invocation.attempt) == ("compile", 2)
    # the start's report makes it running, as for any start
    assert kinds(run.start("compile")) == ["task_started"]
    assert run.machine.tasks["compile"].status == "running"


def test_an_attempt_timer_fires_stale_once_the_attempt_started_or_the_state_was_left() -> None:
    run = launched()
    run.start()
    [timer] = armed(run.finish("compile", "failed"))
    run.fire(timer)
    run.start("compile")
    again = run.fire(timer)  # delivered twice
    assert again.outcome is Outcome.STALE and again.machine is None and again.effects == ()

    run = launched()
    run.start()
    [timer] = armed(run.finish("compile", "failed"))
    left = run.event("ABORT")
    assert timer.name in disarmed(left)  # cleaned up where the adapter can
    stale = run.fire(timer)
    assert stale.outcome is Outcome.STALE and stale.effects == ()


def test_a_timer_of_a_machine_created_again_under_the_same_id_is_stale() -> None:
    run = launched()
    run.start()
    [timer] = armed(run.finish("compile", "failed"))
    # the same id, epoch, task and attempt, backing off later: another due time
    second = Run(RICH)
    second.tick(100)
    second.event("LAUNCH")
    second.start()
    second.finish("compile", "failed")
    assert second.machine.tasks["compile"].attempt == 2
    assert second.fire(timer).outcome is Outcome.STALE


def test_post_retry_starts_at_once_without_a_timer() -> None:
    run = launched()
    run.start()
    run.finish("test", "failed")
    decision = run.apply(Retry())
    assert [s.invocation.task for s in starts(decision)] == ["test"]
    assert armed(decision) == []


# ---- timeouts --------------------------------------------------------------------------


def test_a_running_attempt_records_its_deadline_and_arms_a_timeout_timer() -> None:
    run = in_soak()
    run.tick(5)
    started = run.start()
    record = run.machine.tasks["soak"]
    assert record.deadline == engine.add_seconds(run.now, 60)
    [timer] = armed(started)
    assert (timer.purpose, timer.due) == (TimerPurpose.TIMEOUT, record.deadline)
    assert timer.guard == task_guard("soak", 4, 1)
    assert "deadline" not in record.public()  # internal, like not_before


def test_at_its_deadline_a_running_attempt_fails_with_timeout_and_its_run_stops() -> None:
    run = in_soak()
    [timer] = armed(run.start())
    decision = run.fire(timer)
    record = run.machine.tasks["soak"]
    assert (record.status, record.error_type, record.error) == (
        "failed",
        "Timeout",
        "timed out after 60 seconds",
    )
    assert record.deadline is None
    assert CancelTask("m-1", "soak", "run-soak-4-1", "terraform") in decision.effects
    assert system_events(decision) == [("FAILED", 4)]
    # the stopped run holds its state until its own end comes (recorded as such); a
    # second report of it is then a duplicate
    assert run.machine.state_runs != {}
    assert run.finish("soak", "failed").outcome is Outcome.APPLIED
    assert kinds(run.last) == ["run_finished"] and run.machine.state_runs == {}
    assert run.machine.tasks["soak"].error_type == "Timeout"
    assert run.finish("soak", "failed").outcome is Outcome.DUPLICATE


def test_a_timed_out_attempt_is_retried_per_the_policy() -> None:
    run = launched()
    run.start()
    [timeout] = [t for t in armed(run.last) if t.guard["task"] == "compile"]
    decision = run.fire(timeout)
    assert run.machine.tasks["compile"].attempt == 2
    assert run.machine.tasks["compile"].status == "pending"
    assert [h.error_type for h in decision.history] == ["Timeout"]
    [backoff] = armed(decision)
    assert backoff.purpose is TimerPurpose.ATTEMPT
    assert backoff.due == engine.add_seconds(run.now, 10)


def test_an_attempt_that_ends_in_time_disarms_its_timeout_and_a_late_fire_is_stale() -> None:
    run = in_soak()
    [timer] = armed(run.start())
    run.tick(30)
    finished = run.finish("soak")
    assert disarmed(finished) == [timer.name]
    assert run.machine.tasks["soak"].deadline is None
    stale = run.fire(timer)
    assert stale.outcome is Outcome.STALE and stale.machine is None


def test_a_restarted_run_gets_a_new_deadline_and_the_old_timer_is_stale() -> None:
    run = in_soak()
    [first] = armed(run.start())
    run.tick(20)
    run.apply(engine.Reconcile(restart_running=True))
    restarted = run.start("soak")
    [second] = armed(restarted)
    assert disarmed(restarted) == [first.name]
    assert second.due == engine.add_seconds(run.now, 60)
    assert run.fire(first).outcome is Outcome.STALE
    assert run.fire(second).outcome is Outcome.APPLIED
    assert run.machine.tasks["soak"].error_type == "Timeout"


def test_a_timer_for_another_epoch_attempt_or_task_is_stale() -> None:
    run = in_soak()
    [timer] = armed(run.start())
    for guard in (
        task_guard("soak", 3, 1),
        task_guard("soak", 4, 2),
        task_guard("compile", 4, 1),
        task_guard("nope", 4, 1),
        {"task": 7, "epoch": "x"},
    ):
        fake = timer.model_copy(update={"guard": guard})
        decision = run.apply(TimerFired(fake))
        assert decision.outcome is Outcome.STALE and decision.machine is None
        assert decision.effects == ()
    assert run.machine.tasks["soak"].status == "running"
