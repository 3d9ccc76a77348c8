"""docs/runtime.md#tasks, docs/runtime.md#satisfied-next-and-failed and the retry
extension: task records, statuses, satisfied states, NEXT/FAILED, stale and duplicate
results, retries, terminal states."""

from __future__ import annotations

import pytest
from statewright import engine
from statewright.engine import (
    CancelTask,
    Decision,
    Outcome,
    Retry,
    StartReport,
    TaskFinished,
    TasksStarted,
)
from statewright.errors import EventNotAccepted, InvalidRequest, NothingToRetry
from statewright.model import TaskFinishedDetail

from tests.unit.engine.helpers import (
    PREVIEW,
    RICH,
    T0,
    Run,
    armed,
    kinds,
    published,
    starts,
    system_events,
)


def built() -> Run:
    run = Run(RICH)
    run.event("LAUNCH")
    return run


# ---- starting -------------------------------------------------------------------------


def test_a_confirmed_start_makes_the_task_running_with_its_run_id() -> None:
    run = built()
    decision = run.start("compile")
    record = run.machine.tasks["compile"]
    assert (record.status, record.run_id, record.started_at) == ("running", "run-compile-2-1", T0)
    assert record.not_before is None
    assert kinds(decision) == ["task_started"]
    assert (decision.history[0].task, decision.history[0].attempt) == ("compile", 1)
    assert run.machine.tasks["test"].status == "pending"


def test_a_start_reported_after_the_result_writes_nothing() -> None:
    run = built()
    run.finish("compile")  # a fast task: its result came before its start was recorded
    assert run.machine.tasks["compile"].started_at == T0
    decision = run.start("compile")
    assert decision.outcome is Outcome.DUPLICATE and decision.machine is None


def test_a_start_of_a_superseded_attempt_stops_the_run_it_got() -> None:
    run = built()
    old_epoch = run.machine.epoch
    run.event("RESET")  # both pending records cancelled, then re-created at epoch 3
    decision = run.apply(TasksStarted((StartReport("compile", old_epoch, 1, run_id="late-run"),)))
    assert decision.machine is None
    assert decision.effects == (CancelTask("m-1", "compile", "late-run", "lambda"),)


def test_a_start_that_failed_fails_the_attempt_through_the_retry_policy() -> None:
    run = built()
    decision = run.apply(
        TasksStarted((StartReport("test", 2, 1, error="no binary: install terraform"),))
    )
    record = run.machine.tasks["test"]
    assert (record.status, record.error) == ("failed", "no binary: install terraform")
    assert run.machine.status == "failed"
    assert kinds(decision) == ["task_finished"]


# ---- results --------------------------------------------------------------------------


def test_satisfied_publishes_next_once_and_counts_as_running_until_it_is_applied() -> None:
    run = built()
    run.start()
    first = run.finish("compile", output={"artifact": "s3://a"})
    assert run.machine.status == "running" and system_events(first) == []
    second = run.finish("test")
    assert system_events(second) == [("NEXT", 2)]
    assert run.machine.published["NEXT"] == 2
    assert run.machine.status == "running"  # the transition is still in flight
    third = run.event("PING")  # a no-op event in the satisfied state
    assert system_events(third) == []
    applied = run.system("NEXT")
    assert applied.outcome is Outcome.APPLIED
    assert (run.machine.state, run.machine.epoch, run.machine.status) == ("RUN", 3, "waiting")
    assert kinds(applied) == ["event", "transition"]
    assert (applied.history[0].event, applied.history[0].source) == ("NEXT", "statewright")


@pytest.mark.parametrize(
    ("change", "outcome"),
    [
        ({"epoch": 1}, Outcome.STALE),  # an old epoch
        ({"epoch": 9}, Outcome.STALE),  # an epoch the machine never had
        ({"attempt": 2}, Outcome.STALE),  # not the current attempt
    ],
)
def test_results_of_other_epochs_or_attempts_change_nothing(
    change: dict[str, int], outcome: Outcome
) -> None:
    run = built()
    run.start()
    decision = run.finish("compile", **change)  # type: ignore[arg-type]
    assert decision.outcome is outcome and decision.machine is None and decision.effects == ()


def test_a_second_result_for_one_attempt_is_a_duplicate() -> None:
    run = built()
    run.start()
    run.finish("compile", output={"n": 1})
    decision = run.finish("compile", "failed", error="late failure")
    assert decision.outcome is Outcome.DUPLICATE and decision.machine is None
    assert run.machine.tasks["compile"].output == {"n": 1}


def test_a_result_for_a_task_the_state_does_not_run_is_refused() -> None:
    run = built()
    detail = TaskFinishedDetail(
        machine_id="m-1", epoch=2, task="soak", attempt=1, status="succeeded"
    )
    with pytest.raises(
        InvalidRequest, match="does not run in state BUILD; its tasks are: compile, test"
    ):
        run.apply(TaskFinished(detail))


def test_late_results_of_a_state_left_are_stale() -> None:
    run = built()
    run.start()
    run.event("ABORT")
    assert run.gone
    run2 = built()
    run2.start()
    run2.event("RESET")
    decision = run2.finish("compile", epoch=2, attempt=1)
    assert decision.outcome is Outcome.STALE


# ---- the retry extension ----------------------------------------------------------------


def test_failed_attempts_retry_with_doubling_backoff_then_fail_the_machine() -> None:
    run = built()
    run.start()
    run.finish("test")
    first = run.finish("compile", "failed", error="E1")
    record = run.machine.tasks["compile"]
    assert (record.status, record.attempt, record.error) == ("pending", 2, None)
    assert record.not_before == "2026-03-01T12:00:10.000Z"
    # nothing starts now: an ATTEMPT timer is armed for the end of the backoff
    assert starts(first) == []
    [timer] = armed(first)
    assert (timer.purpose, timer.due) == ("attempt", "2026-03-01T12:00:10.000Z")
    assert timer.guard == {"task": "compile", "epoch": 2, "attempt": 2}
    assert run.machine.status == "running" and system_events(first) == []
    assert kinds(first) == ["task_finished"]
    assert (first.history[0].status, first.history[0].error) == ("failed", "E1")

    [start] = starts(run.fire(timer))
    assert start.invocation.attempt == 2
    run.start("compile")
    second = run.finish("compile", "failed", error="E2")
    [timer] = armed(second)
    assert timer.due == engine.add_seconds(run.now, 20)
    assert timer.guard["attempt"] == 3
    run.fire(timer)

    run.start("compile")
    third = run.finish("compile", "failed", error="E3")
    assert starts(third) == []
    record = run.machine.tasks["compile"]
    assert (record.status, record.attempt, record.error) == ("failed", 3, "E3")
    assert run.machine.status == "failed"
    assert system_events(third) == [("FAILED", 2)]


def test_without_a_retry_policy_a_task_runs_once() -> None:
    run = built()
    run.start()
    decision = run.finish("test", "failed", error="Oops")
    assert starts(decision) == [] and run.machine.tasks["test"].status == "failed"
    assert run.machine.status == "failed"
    assert system_events(decision) == [("FAILED", 2)]
    # the sibling goes on; its success does not un-fail the machine nor publish NEXT
    after = run.finish("compile")
    assert run.machine.status == "failed" and system_events(after) == []


def test_failure_without_a_failed_handler_only_marks_the_machine_failed() -> None:
    run = built()
    run.start()
    run.finish("compile")
    run.finish("test")
    run.system("NEXT")
    run.event("PARK")
    run.start()
    decision = run.finish("test", "failed", error="nope")
    assert run.machine.status == "failed" and system_events(decision) == []
    # external events are still accepted per the state's `on`
    run.event("DESTROY")
    assert run.gone


def test_failed_advances_through_the_failed_handler() -> None:
    run = built()
    run.start()
    run.finish("test", "failed")
    decision = run.system("FAILED")
    assert decision.outcome is Outcome.APPLIED
    assert (run.machine.state, run.machine.epoch) == ("FIXING", 3)
    assert run.machine.tasks["compile"].status == "cancelled"
    assert run.machine.status == "waiting"


# ---- POST /retry ------------------------------------------------------------------------


def test_retry_reruns_only_the_failed_tasks_in_the_same_epoch() -> None:
    run = built()
    run.start()
    run.finish("compile")
    run.finish("test", "failed", error="flaky")
    decision = run.apply(Retry())
    m = run.machine
    assert m.epoch == 2 and m.status == "running"
    assert (m.tasks["test"].status, m.tasks["test"].attempt, m.tasks["test"].error) == (
        "pending",
        2,
        None,
    )
    assert m.tasks["compile"].status == "succeeded"
    assert [s.invocation.task for s in starts(decision)] == ["test"]
    assert kinds(decision) == ["retry"]
    # the FAILED published before the retry no longer applies
    assert run.system("FAILED").outcome is Outcome.STALE
    # a new failure publishes FAILED again; a success lets NEXT through
    run.start()
    again = run.finish("test", "failed")
    assert system_events(again) == [("FAILED", 2)]
    run.apply(Retry())
    run.start()
    done = run.finish("test")
    assert system_events(done) == [("NEXT", 2)]


def test_retry_with_nothing_failed_is_refused() -> None:
    run = built()
    with pytest.raises(NothingToRetry, match="no failed task in state BUILD"):
        run.apply(Retry())


def test_tasks_failed_in_an_earlier_state_are_not_retried() -> None:
    run = built()
    run.start()
    run.finish("test", "failed")
    run.system("FAILED")  # -> FIXING, which has no tasks
    with pytest.raises(NothingToRetry):
        run.apply(Retry())


# ---- NEXT / FAILED delivery -------------------------------------------------------------


def satisfied() -> Run:
    run = built()
    run.start()
    run.finish("compile")
    run.finish("test")
    return run


@pytest.mark.parametrize("epoch", [1, 3, 99])
def test_next_for_another_epoch_is_stale(epoch: int) -> None:
    run = satisfied()
    decision = run.system("NEXT", epoch)
    assert decision.outcome is Outcome.STALE and decision.machine is None


def test_a_next_overtaken_by_an_external_event_is_stale() -> None:
    run = satisfied()
    run.event("RESET")  # leaves epoch 2 before its NEXT came back
    decision = run.system("NEXT", 2)
    assert decision.outcome is Outcome.STALE and decision.machine is None
    assert (run.machine.state, run.machine.epoch) == ("BUILD", 3)


def test_next_delivered_twice_is_applied_once() -> None:
    run = satisfied()
    first = run.system("NEXT", 2)
    second = run.system("NEXT", 2)
    assert first.outcome is Outcome.APPLIED
    assert second.outcome is Outcome.DUPLICATE and second.machine is None
    assert run.machine.epoch == 3


def test_a_next_handled_by_no_op_is_applied_once_and_then_the_machine_waits() -> None:
    run = satisfied()
    run.system("NEXT")
    run.event("SOAK")
    run.start()
    published_next = run.finish("soak")
    assert system_events(published_next) == [("NEXT", 4)]
    first = run.system("NEXT")
    assert first.outcome is Outcome.APPLIED and run.machine.status == "waiting"
    assert (run.machine.state, run.machine.epoch) == ("SOAKING", 4)
    second = run.system("NEXT")
    assert second.outcome is Outcome.DUPLICATE and second.machine is None


def test_next_before_the_state_is_satisfied_is_stale() -> None:
    run = built()
    decision = run.system("NEXT")
    assert decision.outcome is Outcome.STALE


def test_failed_while_nothing_failed_is_stale() -> None:
    run = built()
    assert run.system("FAILED").outcome is Outcome.STALE


def test_a_system_event_the_state_does_not_handle_is_refused() -> None:
    run = Run(PREVIEW)
    with pytest.raises(EventNotAccepted):
        run.system("NEXT")


# ---- statuses and terminal states ----------------------------------------------------------


@pytest.mark.parametrize(
    ("compile_", "test", "status"),
    [
        ("pending", "pending", "running"),
        ("running", "pending", "running"),
        ("succeeded", "running", "running"),
        ("succeeded", "failed", "failed"),
        ("failed", "running", "failed"),
        ("succeeded", "succeeded", "running"),  # satisfied, NEXT in flight
    ],
)
def test_machine_status_follows_its_current_tasks(compile_: str, test: str, status: str) -> None:
    run = built()
    wanted = {"compile": compile_, "test": test}
    started = [t for t, w in wanted.items() if w != "pending"]
    if started:
        run.start(*started)
    for task, result in wanted.items():
        if result not in ("succeeded", "failed"):
            continue
        run.finish(task, result)
        while result == "failed" and run.machine.tasks[task].status == "pending":
            run.start(task)  # exhaust the retry policy
            run.finish(task, "failed")
    assert {t: r.status for t, r in run.machine.tasks.items()} == wanted
    assert run.machine.status == status


def test_a_terminal_state_with_tasks_is_deleted_when_satisfied() -> None:
    run = Run(PREVIEW)
    run.event("LAUNCH")
    run.start()
    run.finish("db-setup")
    run.system("NEXT")
    entered = run.event("DESTROY")
    assert not entered.deleted and run.machine.state == "TEARDOWN"
    run.start()
    done = run.finish("db-teardown", output={"destroyed": True})
    assert done.deleted
    final: Decision = done
    assert final.machine is not None and final.machine.state == "TEARDOWN"
    assert final.machine.tasks["db-teardown"].status == "succeeded"
    assert (
        "Machine Deleted",
        {"machine_id": "m-1", "spec": "preview-env", "state": "TEARDOWN", "epoch": 4},
    ) in published(done)
    assert system_events(done) == []


def test_a_failed_terminal_task_keeps_the_machine() -> None:
    run = Run(PREVIEW)
    run.event("LAUNCH")
    run.start()
    run.finish("db-setup")
    run.system("NEXT")
    run.event("DESTROY")
    run.start()
    decision = run.finish("db-teardown", "failed", error="state locked")
    assert not decision.deleted and run.machine.status == "failed"
    run.apply(Retry())
    run.start()
    assert run.finish("db-teardown").deleted
