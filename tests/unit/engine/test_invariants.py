"""Random sequences of every input on the richest spec: the engine only ever refuses with
a domain error, and the invariants of docs/runtime.md hold after every step."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statewright.engine import (
    Decision,
    InternalEvent,
    Outcome,
    Reconcile,
    Retry,
    StartReport,
    TaskFinished,
    TasksStarted,
    TimerFired,
)
from statewright.errors import StatewrightError
from statewright.model import TaskFinishedDetail

from tests.unit.engine.helpers import RICH, Run, armed, system_events

TASKS = ["compile", "test", "soak"]
NOTHING = Decision(Outcome.APPLIED, reason="no input was applied")

step = st.one_of(
    st.tuples(st.just("event"), st.sampled_from([*RICH.events, "NEXT", "BOGUS"])),
    st.tuples(st.just("system"), st.sampled_from(["NEXT", "FAILED"]), st.integers(-1, 1)),
    st.tuples(
        st.just("finish"),
        st.sampled_from(TASKS),
        st.sampled_from(["succeeded", "failed"]),
        st.integers(-1, 1),
        st.integers(-1, 1),
    ),
    st.tuples(st.just("start"), st.sampled_from(TASKS), st.booleans()),
    st.tuples(st.just("retry")),
    st.tuples(st.just("reconcile"), st.booleans(), st.integers(0, 100)),
    # fire one of the timers armed so far (due or stale, once or again)
    st.tuples(st.just("timer"), st.integers(0, 20)),
)


def apply(run: Run, op: tuple[Any, ...]) -> None:
    m = run.machine
    kind = op[0]
    if kind == "event":
        run.event(op[1], {"n": len(op[1])})
    elif kind == "system":
        run.apply(InternalEvent(op[1], m.epoch + op[2]))
    elif kind == "finish":
        _, task, status, de, da = op
        record = m.tasks.get(task)
        attempt = (record.attempt if record else 1) + da
        detail = TaskFinishedDetail(
            machine_id=m.id, epoch=m.epoch + de, task=task, attempt=attempt, status=status
        )
        run.apply(TaskFinished(detail))
    elif kind == "start":
        _, task, fails = op
        record = m.tasks.get(task)
        if record is not None:
            report = StartReport(
                task,
                record.epoch,
                record.attempt,
                run_id=None if fails else f"r-{task}",
                error="cannot start" if fails else None,
            )
            run.apply(TasksStarted((report,)))
    elif kind == "retry":
        run.apply(Retry())
    elif kind == "timer":
        if run.timers:
            run.apply(TimerFired(run.timers[op[1] % len(run.timers)]))
    else:
        run.tick(op[2])
        run.apply(Reconcile(restart_running=op[1]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40))
def test_random_inputs_keep_the_invariants(ops: list[tuple[Any, ...]]) -> None:
    run = Run(RICH)
    next_epochs: list[int] = []
    for op in ops:
        if run.gone:
            break
        before = run.machine
        run.last = NOTHING
        try:
            apply(run, op)
        except StatewrightError:
            assert run.machine == before  # a refusal changes nothing
            continue
        decision = run.last
        if decision is NOTHING:
            continue
        run.timers.extend(armed(decision))
        m = run.machine
        if decision.outcome is not Outcome.APPLIED:
            assert decision.machine is None and m == before
        # epochs only grow, one per state entered
        entered = sum(h.kind == "transition" for h in decision.history)
        assert m.epoch == before.epoch + entered
        # history sequence numbers are contiguous
        seqs = [h.seq for h in decision.history]
        assert seqs == list(range(before.history_seq + 1, m.history_seq + 1))
        # the current state's tasks are exactly the records of the current epoch
        if not decision.deleted:
            assert set(m.current_tasks()) == set(RICH.states[m.state].tasks)
            for record in m.current_tasks().values():
                assert record.state == m.state
        # NEXT is published at most once per epoch outside reconciliation
        if op[0] != "reconcile":
            next_epochs.extend(e for name, e in system_events(decision) if name == "NEXT")
        # a running attempt of a task that keeps state holds that state, alone; a
        # machine is deleted only when no such run is still going
        for name, record in m.current_tasks().items():
            key = RICH.tasks[name].state_key
            if key is not None and record.status == "running" and not decision.deleted:
                assert m.state_runs[key].is_attempt(name, record.epoch, record.attempt)
        if decision.deleted:
            assert m.state_runs == {}
        # a failed machine has a failed current task, and only then (a deleted machine
        # keeps the status it had when its terminal state deleted it)
        if not decision.deleted:
            failed = any(r.status == "failed" for r in m.current_tasks().values())
            assert (m.status == "failed") == failed
    assert len(next_epochs) == len(set(next_epochs))
