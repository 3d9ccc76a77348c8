"""Reconcile: what the local server does on start and the AWS reconciler on a schedule —
start pending tasks that are due, re-publish a lost NEXT/FAILED, fail tasks past their
timeout, and otherwise write nothing."""

from __future__ import annotations

from statewright.engine import CancelTask, Reconcile

from tests.unit.engine.helpers import RICH, Run, armed, kinds, starts, system_events


def built() -> Run:
    run = Run(RICH)
    run.event("LAUNCH")
    return run


def test_a_machine_on_track_needs_nothing() -> None:
    run = built()
    run.start()
    run.tick(5)
    decision = run.apply(Reconcile())
    assert decision.machine is None and decision.effects == ()


def test_pending_tasks_whose_start_was_lost_are_started_again_without_a_write() -> None:
    run = built()
    run.tick(1)
    decision = run.apply(Reconcile())
    assert decision.machine is None
    assert sorted(
        (s.invocation.task, s.invocation.attempt, s.invocation.epoch) for s in starts(decision)
    ) == [
        ("compile", 1, 2),
        ("test", 1, 2),
    ]


def test_a_grace_period_leaves_fresh_pending_tasks_to_the_start_in_flight() -> None:
    run = built()
    run.tick(10)
    assert starts(run.apply(Reconcile(pending_grace_seconds=60))) == []
    run.tick(60)
    assert len(starts(run.apply(Reconcile(pending_grace_seconds=60)))) == 2


def test_a_retry_waiting_for_its_backoff_is_not_started_early() -> None:
    run = built()
    run.start()
    run.finish("compile", "failed")  # attempt 2 due in 10 s
    run.finish("test")
    run.tick(3)
    # its timer may have been lost with the process that armed it: it is armed again
    # (arming is idempotent per name), in both modes, and nothing starts early
    for inp in (Reconcile(), Reconcile(restart_running=True)):
        decision = run.apply(inp)
        assert starts(decision) == [] and decision.machine is None
        [timer] = armed(decision)
        assert (timer.purpose, timer.due) == ("attempt", "2026-03-01T12:00:10.000Z")
    run.tick(8)
    [due] = starts(run.apply(Reconcile()))
    assert due.invocation.attempt == 2


def test_running_tasks_are_restarted_only_after_a_crash() -> None:
    run = built()
    run.start()
    run.tick(5)
    assert starts(run.apply(Reconcile())) == []
    decision = run.apply(Reconcile(restart_running=True))
    assert decision.machine is None
    assert sorted(s.invocation.run_key for s in starts(decision)) == [
        "m-1:2:compile:1",
        "m-1:2:test:1",
    ]
    # the restarted run's report records it again
    again = run.start("compile", "test")
    assert kinds(again) == ["task_started", "task_started"]
    assert {h.source for h in again.history} == {"recovery"}


def test_tasks_past_their_timeout_fail_and_are_stopped() -> None:
    run = built()
    run.start()
    run.finish("test")
    run.finish("compile")
    run.system("NEXT")
    run.event("SOAK")
    run.start()
    run.tick(59)
    assert run.apply(Reconcile()).machine is None
    run.tick(1)
    decision = run.apply(Reconcile())
    record = run.machine.tasks["soak"]
    assert (record.status, record.error) == ("failed", "timed out after 60 seconds")
    assert record.error_type == "Timeout"
    assert CancelTask("m-1", "soak", "run-soak-4-1", "terraform") in decision.effects
    assert run.machine.status == "failed"
    assert system_events(decision) == [("FAILED", 4)]
    # The run, being stopped, holds its state until its own end comes: recorded as the
    # end of that run; the task's record stays as the timeout left it.
    assert run.finish("soak", "failed").outcome.value == "applied"
    assert kinds(run.last) == ["run_finished"]
    assert run.machine.tasks["soak"].error == "timed out after 60 seconds"
    assert run.machine.state_runs == {}
    assert run.finish("soak", "failed").outcome.value == "duplicate"


def test_a_lost_next_is_published_again_until_it_is_applied() -> None:
    run = built()
    run.start()
    run.finish("compile")
    run.finish("test")
    decision = run.apply(Reconcile())
    assert system_events(decision) == [("NEXT", 2)]
    assert decision.machine is None  # it was recorded as published already
    run.system("NEXT")
    assert system_events(run.apply(Reconcile())) == []


def test_a_lost_failed_is_published_again_until_it_is_applied() -> None:
    run = built()
    run.start()
    run.finish("test", "failed")
    assert system_events(run.apply(Reconcile())) == [("FAILED", 2)]
    run.system("FAILED")
    assert system_events(run.apply(Reconcile())) == []
