"""One run per state file, graceful and forced cancel, and a terminal state that waits
for the runs still going (docs/runtime.md, "One run per state file")."""

from __future__ import annotations

from typing import Any

from statewright.engine import CancelTask, Reconcile, StartReport, TasksStarted

from tests.unit.engine.helpers import Run, advance, kinds, make_spec, starts

SOURCE = {"type": "local", "location": "modules/env"}


def tf_spec(apply: dict[str, Any] | None = None) -> Any:
    return make_spec(
        "tf",
        {
            "events": ["LAUNCH", "DESTROY", "REDO", "ABORT"],
            "states": {
                "INIT": {"on": {"LAUNCH": advance("PROVISION")}},
                "PROVISION": {
                    "tasks": ["apply", "probe"],
                    "on": {
                        "NEXT": advance("RUN"),
                        "DESTROY": advance("TEARDOWN"),
                        "REDO": advance("PROVISION"),
                        "ABORT": advance("GONE"),
                    },
                },
                "RUN": {"on": {"DESTROY": advance("TEARDOWN")}},
                "TEARDOWN": {"terminal": True, "tasks": ["destroy", "elsewhere"]},
                "GONE": {"terminal": True},
            },
            "tasks": {
                "apply": {
                    "executor": "terraform",
                    "config": {"action": "apply", "source": SOURCE},
                    "timeout_seconds": 60,
                    **(apply or {}),
                },
                "probe": {"executor": "lambda", "config": {"name": "probe"}},
                "destroy": {
                    "executor": "terraform",
                    "config": {"action": "destroy", "source": SOURCE},
                },
                # Another source: another state file, never held up by the apply.
                "elsewhere": {
                    "executor": "terraform",
                    "config": {"action": "destroy", "source": {"type": "local", "location": "b"}},
                },
            },
        },
    )


GRACEFUL = tf_spec()
FORCED = tf_spec({"cancel": "force"})


def started(run: Run) -> list[str]:
    return [s.invocation.task for s in starts(run.last)]


def cancels(run: Run) -> list[tuple[str, str]]:
    return [(e.task, e.run_id) for e in run.last.effects if isinstance(e, CancelTask)]


def provisioning(spec: Any = GRACEFUL) -> Run:
    run = Run(spec)
    run.event("LAUNCH")
    run.start()
    return run


def test_leaving_a_state_lets_a_graceful_terraform_run_finish_and_the_next_waits() -> None:
    run = provisioning()
    run.event("DESTROY")
    # The lambda task is stopped as before; the apply is not.
    assert cancels(run) == [("probe", "run-probe-2-1")]
    assert run.machine.tasks["apply"].status == "cancelled"
    # The destroy works on the apply's state: it waits, unstarted; the other source starts.
    assert started(run) == ["elsewhere"]
    destroy = run.machine.tasks["destroy"]
    assert (destroy.status, destroy.waiting_for) == ("pending", ["apply"])
    assert run.machine.public()["tasks"]["destroy"]["waiting_for"] == ["apply"]
    assert "state_runs" not in run.machine.public()

    # The apply's own end (a result of the epoch left) starts the destroy.
    run.finish("apply", epoch=2)
    assert run.last.outcome.value == "applied"
    assert started(run) == ["destroy"]
    assert run.machine.tasks["destroy"].waiting_for is None
    entry = run.last.history[0]
    assert (entry.kind, entry.task, entry.status, entry.epoch, entry.state) == (
        "run_finished",
        "apply",
        "succeeded",
        2,
        "PROVISION",
    )
    # The apply's record stays as the state left it.
    assert run.machine.tasks["apply"].status == "cancelled"
    run.start()
    run.finish("elsewhere")
    run.finish("destroy")
    assert run.gone


def test_a_second_end_of_the_same_run_is_stale() -> None:
    run = provisioning()
    run.event("DESTROY")
    run.finish("apply", epoch=2)
    assert run.finish("apply", epoch=2).outcome.value == "stale"


def test_cancel_force_stops_the_run_and_its_end_starts_the_next() -> None:
    run = provisioning(FORCED)
    run.event("DESTROY")
    assert sorted(cancels(run)) == [("apply", "run-apply-2-1"), ("probe", "run-probe-2-1")]
    # Stopping takes a while (SIGINT, then SIGKILL; StopBuild): the state stays held.
    assert run.machine.tasks["destroy"].waiting_for == ["apply"]
    run.finish("apply", "failed", error="stopped", epoch=2)
    assert started(run) == ["destroy"]
    assert kinds(run.last)[0] == "run_finished"


def test_a_run_whose_start_reports_after_its_state_was_left() -> None:
    run = Run(GRACEFUL)
    run.event("LAUNCH")  # apply asked to start; its start has not reported yet
    run.event("DESTROY")
    assert run.machine.tasks["destroy"].waiting_for == ["apply"]
    run.apply(TasksStarted((StartReport("apply", 2, 1, run_id="r-apply"),)))
    assert cancels(run) == []  # graceful: it runs to its end
    run.finish("apply", epoch=2)
    assert started(run) == ["destroy"]


def test_a_forced_run_whose_start_reports_after_its_state_was_left_is_stopped() -> None:
    run = Run(FORCED)
    run.event("LAUNCH")
    run.event("DESTROY")
    run.apply(TasksStarted((StartReport("apply", 2, 1, run_id="r-apply"),)))
    assert cancels(run) == [("apply", "r-apply")]
    assert run.machine.tasks["destroy"].status == "pending"
    run.finish("apply", "failed", error="stopped", epoch=2)
    assert started(run) == ["destroy"]


def test_a_run_that_could_not_start_holds_nothing() -> None:
    run = Run(GRACEFUL)
    run.event("LAUNCH")
    run.event("DESTROY")
    run.apply(TasksStarted((StartReport("apply", 2, 1, error="no terraform binary"),)))
    assert started(run) == ["destroy"]


def test_a_terminal_state_is_deleted_only_when_no_run_is_still_going() -> None:
    run = provisioning()
    run.event("ABORT")
    assert not run.gone
    assert (run.machine.state, run.machine.status) == ("GONE", "running")
    run.finish("apply", "failed", error="boom", epoch=2)
    assert run.gone
    assert kinds(run.last) == ["run_finished"]


def test_re_entering_a_state_waits_for_the_run_of_the_state_left() -> None:
    run = provisioning()
    run.event("REDO")
    record = run.machine.tasks["apply"]
    assert (record.epoch, record.status, record.waiting_for) == (3, "pending", ["apply"])
    assert started(run) == ["probe"]
    run.finish("apply", epoch=2)
    assert started(run) == ["apply"]
    assert starts(run.last)[0].invocation.epoch == 3


def test_tasks_of_one_state_on_one_source_take_turns() -> None:
    spec = make_spec(
        "turns",
        {
            "events": [],
            "states": {
                "INIT": {"tasks": ["first", "second"], "on": {"NEXT": advance("DONE")}},
                "DONE": {"terminal": True},
            },
            "tasks": {
                "first": {"executor": "terraform", "config": {"action": "apply", "source": SOURCE}},
                "second": {"executor": "terraform", "config": {"action": "plan", "source": SOURCE}},
            },
        },
    )
    run = Run(spec)
    assert started(run) == ["first"]
    assert run.machine.tasks["second"].waiting_for == ["first"]
    run.start()
    # A failure ends the run as well: the other task gets the state.
    run.finish("first", "failed", error="boom")
    assert started(run) == ["second"]
    assert run.machine.status == "failed"


def test_a_timed_out_run_holds_its_state_until_it_is_stopped() -> None:
    run = provisioning(tf_spec({"retry": {"attempts": 2}}))
    run.tick(60)
    run.apply(Reconcile())
    assert cancels(run) == [("apply", "run-apply-2-1")]
    record = run.machine.tasks["apply"]
    # The retry waits for the stopped run, not beside it.
    assert (record.attempt, record.status, record.waiting_for) == (2, "pending", ["apply"])
    run.finish("apply", "failed", error="stopped", attempt=1)
    assert started(run) == ["apply"]
    assert starts(run.last)[0].invocation.attempt == 2


def test_a_backoff_not_begun_holds_nothing_when_its_state_is_left() -> None:
    run = provisioning(tf_spec({"retry": {"attempts": 2, "backoff_seconds": 30}}))
    run.finish("apply", "failed", error="boom")
    assert run.machine.tasks["apply"].attempt == 2
    run.event("DESTROY")
    assert "destroy" in started(run)


def test_after_a_restart_runs_of_states_left_are_over() -> None:
    run = provisioning()
    run.event("DESTROY")
    run.apply(Reconcile(restart_running=True))
    assert "destroy" in started(run)
    entry = next(h for h in run.last.history if h.kind == "run_finished")
    assert (entry.task, entry.status, entry.epoch) == ("apply", "failed", 2)


def test_the_reconciler_stops_a_run_of_a_state_left_whose_end_never_came() -> None:
    run = provisioning()
    run.event("DESTROY")
    run.tick(59)
    assert run.apply(Reconcile()).machine is None
    run.tick(1)
    run.apply(Reconcile())
    assert cancels(run) == [("apply", "run-apply-2-1")]
    assert "destroy" in started(run)
