"""Task graphs (`needs`), failures a retry would only repeat (ReferenceError), and the
bounded stop of an endless NEXT loop (docs/runtime.md)."""

from __future__ import annotations

import pytest
from statewright.engine import Reconcile, Retry, StartReport, TasksStarted
from statewright.errors import NothingToRetry
from statewright.spec.rules import MAX_IDLE_NEXT_TRANSITIONS

from tests.unit.engine.helpers import Run, advance, kinds, make_spec, starts, system_events

CHAIN = make_spec(
    "chain",
    {
        "events": ["LAUNCH"],
        "states": {
            "INIT": {"on": {"LAUNCH": advance("BUILD")}},
            "BUILD": {"tasks": ["a", "b", "c", "side"], "on": {"NEXT": advance("DONE")}},
            "DONE": {"terminal": True},
        },
        "tasks": {
            "a": {"executor": "lambda", "config": {"name": "a"}},
            "b": {
                "executor": "lambda",
                "config": {"name": "b"},
                "needs": ["a"],
                "retry": {"attempts": 3},
            },
            "c": {"executor": "lambda", "config": {"name": "c"}, "needs": ["b", "elsewhere"]},
            "side": {"executor": "lambda", "config": {"name": "side"}},
            "elsewhere": {"executor": "lambda", "config": {"name": "e"}},
        },
    },
)


def started(run: Run) -> list[str]:
    return [s.invocation.task for s in starts(run.last)]


def launched() -> Run:
    run = Run(CHAIN)
    run.event("LAUNCH")
    return run


def test_a_state_starts_only_the_tasks_that_need_nothing_in_it() -> None:
    run = launched()
    assert started(run) == ["a", "side"]
    tasks = run.machine.tasks
    assert (tasks["b"].status, tasks["b"].waiting_for) == ("pending", ["a"])
    # A need on a task the state does not run is ignored.
    assert tasks["c"].waiting_for == ["b"]
    assert tasks["b"].public()["waiting_for"] == ["a"]


def test_each_task_starts_when_what_it_needs_succeeded() -> None:
    run = launched()
    run.start()
    run.finish("a", output={"url": "u"})
    assert started(run) == ["b"]
    assert run.machine.tasks["b"].waiting_for is None
    b = starts(run.last)[0].invocation
    assert b.outputs["a"] == {"url": "u"}  # the output it may reference
    run.start()
    run.finish("side")
    assert started(run) == []
    run.finish("b")
    assert started(run) == ["c"]
    run.start()
    run.finish("c")
    assert system_events(run.last) == [("NEXT", run.machine.epoch)]
    run.system("NEXT")
    assert run.gone


def test_a_failed_need_leaves_its_dependents_unstarted_and_retry_resumes() -> None:
    run = launched()
    run.start()
    run.finish("a")
    run.start()
    run.finish("side")
    for _ in range(3):
        run.finish("b", "failed", error="boom")
        if run.machine.tasks["b"].status == "pending":
            run.start()
    assert run.machine.tasks["b"].status == "failed"
    assert run.machine.status == "failed"
    assert (run.machine.tasks["c"].status, run.machine.tasks["c"].waiting_for) == (
        "pending",
        ["b"],
    )
    # The reconciler does not start a task still waiting.
    assert "c" not in [s.invocation.task for s in starts(run.apply(Reconcile()))]
    run.apply(Retry())
    assert started(run) == ["b"]
    assert run.machine.tasks["b"].attempt == 4
    run.start()
    run.finish("b")
    assert started(run) == ["c"] and run.machine.status == "running"
    run.start()
    run.finish("c")
    assert system_events(run.last) == [("NEXT", run.machine.epoch)]
    run.system("NEXT")
    assert run.gone


def test_a_reference_error_fails_the_attempt_without_retry() -> None:
    run = launched()
    run.start()
    run.finish("a")
    record = run.machine.tasks["b"]
    report = StartReport(
        "b",
        record.epoch,
        record.attempt,
        error="`${{ x }}` does not resolve",
        error_type="ReferenceError",
    )
    run.apply(TasksStarted((report,)))
    b = run.machine.tasks["b"]
    assert (b.status, b.attempt, b.error_type) == ("failed", 1, "ReferenceError")
    assert "does not resolve" in (b.error or "")
    assert run.machine.status == "failed" and starts(run.last) == []


LOOP = make_spec(
    "loop",
    {
        "events": ["GO", "STOP"],
        "states": {
            "INIT": {"on": {"GO": advance("A")}},
            "A": {"on": {"NEXT": advance("B"), "STOP": advance("END")}},
            "B": {"on": {"NEXT": advance("A"), "STOP": advance("END")}},
            "END": {"terminal": True},
        },
    },
)


def spin(run: Run) -> int:
    """Deliver NEXT as the bus would, until none is published; the number applied."""
    applied = 0
    while system_events(run.last):
        event, epoch = system_events(run.last)[0]
        run.system(event, epoch)
        applied += 1
        assert applied <= 10 * MAX_IDLE_NEXT_TRANSITIONS, "the loop was not stopped"
    return applied


def test_an_endless_next_loop_is_stopped_and_external_events_still_work() -> None:
    run = Run(LOOP)
    run.event("GO")
    assert spin(run) == MAX_IDLE_NEXT_TRANSITIONS
    machine = run.machine
    assert machine.status == "failed"
    assert machine.halted is not None and "NEXT" in machine.halted
    assert kinds(run.last)[-1] == "halted"
    assert machine.public()["halted"] == machine.halted
    # Nothing to re-publish, nothing to retry.
    assert system_events(run.apply(Reconcile())) == []
    with pytest.raises(NothingToRetry):
        run.apply(Retry())
    run.event("STOP")
    assert run.gone


def test_an_external_event_clears_the_halt_and_restarts_the_count() -> None:
    spec = make_spec(
        "poked",
        {
            "events": ["GO", "POKE"],
            "states": {
                "INIT": {"on": {"GO": advance("A")}},
                "A": {"on": {"NEXT": advance("B"), "POKE": [{"action": "no-op"}]}},
                "B": {"on": {"NEXT": advance("A"), "POKE": [{"action": "no-op"}]}},
                "END": {"terminal": True},
            },
        },
    )
    run = Run(spec)
    run.event("GO")
    spin(run)
    assert run.machine.halted is not None
    run.event("POKE")
    assert run.machine.halted is None and run.machine.status == "running"
    assert spin(run) == MAX_IDLE_NEXT_TRANSITIONS
    assert run.machine.halted is not None


def test_tasks_between_the_transitions_are_progress() -> None:
    spec = make_spec(
        "busy",
        {
            "events": ["GO"],
            "states": {
                "INIT": {"on": {"GO": advance("A")}},
                "A": {"on": {"NEXT": advance("B")}},
                "B": {"tasks": ["t"], "on": {"NEXT": advance("A")}},
                "END": {"terminal": True},
            },
            "tasks": {"t": {"executor": "lambda", "config": {"name": "t"}}},
        },
    )
    run = Run(spec)
    run.event("GO")
    for _ in range(3 * MAX_IDLE_NEXT_TRANSITIONS):
        if run.machine.state == "B" and run.machine.tasks["t"].status != "succeeded":
            run.start()
            run.finish("t")
        event, epoch = system_events(run.last)[0]
        run.system(event, epoch)
    assert run.machine.halted is None
