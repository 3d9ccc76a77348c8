"""`simulate`: the dry run follows the runtime rules of docs/runtime.md."""

from __future__ import annotations

from statewright.spec.models import Spec
from statewright.spec.rules import MAX_IDLE_NEXT_TRANSITIONS
from statewright.spec.simulate import describe, simulate

from tests.unit.spec.helpers import BASE, edit, lint


def spec_of(text: str = BASE) -> Spec:
    result = lint(text)
    assert result.spec is not None, [f.format() for f in result.findings]
    return result.spec


def path(sim: object) -> list[tuple[str, str | None, str | None]]:
    return [(s.event, s.source, s.target) for s in sim.steps]  # type: ignore[attr-defined]


def test_launch_then_destroy_runs_the_whole_life() -> None:
    sim = simulate(spec_of(), ["LAUNCH", "DESTROY"])
    assert path(sim) == [
        ("(create)", None, "INIT"),
        ("LAUNCH", "INIT", "PROVISION"),
        ("NEXT", "PROVISION", "RUN"),
        ("DESTROY", "RUN", "TEARDOWN"),
    ]
    assert sim.steps[1].started == ("db-setup",)
    assert sim.steps[2].system and not sim.steps[1].system
    assert [s.epoch for s in sim.steps] == [1, 2, 3, 4]
    assert sim.status == "deleted" and sim.state is None
    assert sim.refused == []


def test_refusals_use_the_api_error_codes_and_change_nothing() -> None:
    sim = simulate(spec_of(), ["DESTROY", "NEXT", "PAUSE", "LAUNCH"])
    assert [s.refused for s in sim.steps] == [
        None,
        "event_not_accepted",
        "reserved_event",
        "unknown_event",
        None,
        None,
    ]
    assert "accepted there: LAUNCH" in sim.steps[1].message
    assert sim.state == "RUN" and sim.epoch == 3


def test_events_after_deletion_are_refused() -> None:
    sim = simulate(spec_of(), ["LAUNCH", "DESTROY", "LAUNCH"])
    assert sim.steps[-1].refused == "machine_not_found"


def test_a_failing_task_fires_failed_when_the_state_handles_it() -> None:
    text = edit(
        "      NEXT:\n        - action: advance\n          state: RUN\n",
        "      NEXT:\n        - action: advance\n          state: RUN\n"
        "      FAILED:\n        - action: advance\n          state: TEARDOWN\n",
    )
    sim = simulate(spec_of(text), ["LAUNCH"], failing=["db-setup"])
    assert path(sim)[-1] == ("FAILED", "PROVISION", "TEARDOWN")
    assert sim.steps[1].failed == ("db-setup",)
    assert sim.status == "deleted"


def test_a_failing_task_without_a_failed_handler_leaves_the_machine_failed() -> None:
    sim = simulate(spec_of(), ["LAUNCH"], failing=["db-setup"])
    assert sim.state == "PROVISION" and sim.status == "failed"
    assert "failed in PROVISION" in describe(spec_of(), sim)[-1]


def test_a_no_op_event_changes_no_state_and_fires_no_next() -> None:
    text = edit("      DESTROY:\n", "      LAUNCH: [{action: no-op}]\n      DESTROY:\n")
    sim = simulate(spec_of(text), ["LAUNCH", "LAUNCH"])
    assert path(sim)[-1] == ("LAUNCH", "RUN", None)
    assert sim.state == "RUN" and sim.epoch == 3


def test_states_without_tasks_fire_next_on_entry_and_a_loop_is_stopped() -> None:
    # The linter refuses this loop (next-cycle); a spec stored before the rule may not.
    advance = [{"action": "advance", "state": "A"}]
    spec = Spec.model_validate(
        {
            "name": "loop",
            "events": ["GO"],
            "states": {
                "INIT": {"on": {"GO": advance}},
                "A": {"on": {"NEXT": [{"action": "advance", "state": "B"}]}},
                "B": {"on": {"NEXT": advance}},
                "END": {"terminal": True},
            },
        }
    )
    sim = simulate(spec, ["GO"])
    # The engine halts the loop, as it would a real machine.
    assert sim.steps[-1].refused == "halted"
    assert "NEXT" in sim.steps[-1].message
    assert len(sim.steps) == MAX_IDLE_NEXT_TRANSITIONS + 3
    assert sim.status == "failed"


def test_describe_reads_like_the_life_of_a_machine() -> None:
    spec = spec_of()
    lines = describe(spec, simulate(spec, ["LAUNCH", "DESTROY"]))
    assert lines == [
        "created in INIT (epoch 1)",
        "  waits in INIT; accepts LAUNCH",
        "LAUNCH: INIT -> PROVISION (epoch 2)",
        "  task db-setup (lambda) succeeds",
        "  NEXT: PROVISION -> RUN (epoch 3)",
        "  waits in RUN; accepts DESTROY",
        "DESTROY: RUN -> TEARDOWN (epoch 4)",
        "  task db-teardown (terraform) succeeds",
        "  terminal state satisfied: the machine is deleted",
    ]


def test_tasks_start_in_the_order_their_needs_give_and_references_show_as_written() -> None:
    from tests.unit.spec.test_task_graph_rules import GRAPH

    spec = spec_of(GRAPH)
    sim = simulate(spec, ["LAUNCH"])
    assert sim.steps[1].started == ("db", "app", "smoke")
    lines = describe(spec, sim)
    assert "  task app (terraform, after db) succeeds" in lines
    assert "    config.variables.db_port takes ${{ tasks.db.outputs.endpoint.port }}" in lines
    assert sim.state == "RUN" and sim.status == "waiting"


def test_the_dependents_of_a_failing_task_are_not_started() -> None:
    from tests.unit.spec.test_task_graph_rules import GRAPH

    spec = spec_of(GRAPH)
    sim = simulate(spec, ["LAUNCH"], failing=["app"])
    step = sim.steps[1]
    assert step.started == ("db", "app") and step.failed == ("app",)
    assert step.waiting == ("smoke",)
    assert sim.status == "failed" and sim.state == "PROVISION"
    assert "  task smoke not started: waits for a failed need" in describe(spec, sim)


# ---- time passing: a lifecycle's warnings and expiry (--advance) ---------------------

LIFECYCLE = BASE + "lifecycle:\n  ttl: 8h\n  expire_event: DESTROY\n  warn_before: [1h, 10m]\n"


def test_advancing_past_expiry_shows_the_warnings_then_the_expire_event_at_their_times() -> None:
    spec = spec_of(LIFECYCLE)
    sim = simulate(spec, ["LAUNCH"], advance=80 * 3600)
    timed = [(s.event, s.after, s.source, s.target) for s in sim.steps if s.after is not None]
    assert timed == [
        ("(expiring)", 7 * 3600, "RUN", None),
        ("(expiring)", 7 * 3600 + 50 * 60, "RUN", None),
        ("(expired)", 8 * 3600, "RUN", None),
        ("DESTROY", 8 * 3600, "RUN", "TEARDOWN"),
    ]
    assert sim.status == "deleted"
    assert describe(spec, sim)[-6:] == [
        "after 7h: Machine Expiring: expires in 1h",
        "after 7h50m: Machine Expiring: expires in 10m",
        "after 8h: DESTROY sent",
        "  DESTROY: RUN -> TEARDOWN (epoch 4)",
        "    task db-teardown (terraform) succeeds",
        "  terminal state satisfied: the machine is deleted",
    ]


def test_advancing_short_of_expiry_shows_only_the_warnings_due_by_then() -> None:
    sim = simulate(spec_of(LIFECYCLE), ["LAUNCH"], advance=7 * 3600 + 1)
    assert [s.event for s in sim.steps if s.after is not None] == ["(expiring)"]
    assert sim.state == "RUN" and sim.status == "waiting"


def test_expiry_in_a_state_that_does_not_accept_the_expire_event_says_it_waits() -> None:
    spec = spec_of(LIFECYCLE)
    sim = simulate(spec, [], advance=9 * 3600)
    assert sim.state == "INIT"
    assert describe(spec, sim)[-2:] == [
        "after 8h: DESTROY is not accepted in INIT: it is sent again each time the machine "
        "enters a state",
        "  waits in INIT; accepts LAUNCH",
    ]


def test_without_a_lifecycle_time_passes_and_nothing_happens() -> None:
    sim = simulate(spec_of(), ["LAUNCH"], advance=1000 * 3600)
    assert [s.event for s in sim.steps] == ["(create)", "LAUNCH", "NEXT"]
    assert sim.state == "RUN"
