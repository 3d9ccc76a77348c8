"""docs/runtime.md: creation, external events, entering states, metadata."""

from __future__ import annotations

from typing import Any

import pytest
from statewright import engine
from statewright.engine import Create, Delete, ExternalEvent, Outcome
from statewright.errors import (
    EventNotAccepted,
    InvalidMetadata,
    InvalidRequest,
    ReservedEvent,
    UnknownEvent,
)

from tests.unit.engine.helpers import PREVIEW, RICH, T0, Run, kinds, make_spec, published, starts

# ---- create ---------------------------------------------------------------------------


def test_a_machine_starts_in_init_at_epoch_1_and_waits_when_init_has_no_tasks() -> None:
    decision = engine.create(PREVIEW, Create("env-42", {"owner": "ana"}), T0)
    m = decision.machine
    assert m is not None
    assert (m.id, m.spec, m.spec_digest) == ("env-42", "preview-env", PREVIEW.digest)
    assert (m.state, m.epoch, m.version, m.status) == ("INIT", 1, 1, "waiting")
    assert m.metadata == {"owner": "ana"}
    assert m.created_at == m.updated_at == T0
    assert kinds(decision) == ["created"]
    assert published(decision) == [
        (
            "Machine State Changed",
            {"machine_id": "env-42", "spec": "preview-env", "from": None, "to": "INIT", "epoch": 1},
        )
    ]
    assert starts(decision) == []


def test_init_tasks_start_on_creation() -> None:
    spec = make_spec(
        "boot",
        {
            "events": [],
            "states": {
                "INIT": {
                    "tasks": ["probe"],
                    "on": {"NEXT": [{"action": "advance", "state": "END"}]},
                },
                "END": {"terminal": True},
            },
            "tasks": {"probe": {"executor": "lambda", "config": {"name": "probe"}}},
        },
    )
    decision = engine.create(spec, Create("m"), T0)
    assert decision.machine is not None
    record = decision.machine.tasks["probe"]
    assert (record.status, record.attempt, record.state, record.epoch) == ("pending", 1, "INIT", 1)
    assert decision.machine.status == "running"
    [start] = starts(decision)
    assert (start.invocation.task, start.invocation.epoch, start.invocation.attempt) == (
        "probe",
        1,
        1,
    )


def test_init_without_tasks_but_with_next_publishes_next_at_once() -> None:
    spec = make_spec(
        "hop",
        {
            "events": [],
            "states": {
                "INIT": {"on": {"NEXT": [{"action": "advance", "state": "END"}]}},
                "END": {"terminal": True},
            },
        },
    )
    decision = engine.create(spec, Create("m"), T0)
    assert (
        "Machine Event",
        {"machine_id": "m", "event": "NEXT", "epoch": 1, "spec": "hop"},
    ) in published(decision)
    assert decision.machine is not None and decision.machine.status == "running"


@pytest.mark.parametrize(
    "machine_id", ["", "-lead", ".dot", "a/b", "a b", "ü", "x" * 129, "../etc"]
)
def test_invalid_machine_ids_are_refused(machine_id: str) -> None:
    with pytest.raises(InvalidRequest, match="machine id"):
        engine.create(PREVIEW, Create(machine_id), T0)


@pytest.mark.parametrize("machine_id", ["a", "A9", "env-1.prod_x", "x" * 128])
def test_valid_machine_ids_are_accepted(machine_id: str) -> None:
    assert engine.create(PREVIEW, Create(machine_id), T0).machine is not None


# ---- external events: refusals, in docs/runtime.md's order ---------------------------


@pytest.mark.parametrize(
    ("event", "error", "words"),
    [
        ("NEXT", ReservedEvent, "system event"),
        ("FAILED", ReservedEvent, "system event"),
        ("launch", UnknownEvent, "did you mean LAUNCH"),
        ("EXPLODE", UnknownEvent, "its events are: LAUNCH, DESTROY"),
        (
            "DESTROY",
            EventNotAccepted,
            "DESTROY is not accepted in state INIT; accepted there: LAUNCH",
        ),
    ],
)
def test_refused_events_name_the_problem_and_change_nothing(
    event: str, error: type[Exception], words: str
) -> None:
    run = Run(PREVIEW)
    before = run.machine.model_copy(deep=True)
    with pytest.raises(error, match=words):
        run.event(event, {"ignored": True})
    assert run.machine == before


def test_the_message_lists_what_the_state_accepts() -> None:
    run = Run(PREVIEW)
    run.event("LAUNCH")
    with pytest.raises(EventNotAccepted) as caught:
        run.event("DESTROY")
    assert (
        caught.value.message == "DESTROY is not accepted in state PROVISION; accepted there: NEXT"
    )
    assert caught.value.code == "event_not_accepted"


def test_reserved_is_checked_before_unknown_even_when_the_spec_does_not_declare_it() -> None:
    run = Run(RICH)
    with pytest.raises(ReservedEvent):
        run.event("NEXT", {"bad": {"nested": 1}})


def test_invalid_metadata_is_refused_before_not_accepted_and_changes_nothing() -> None:
    run = Run(PREVIEW)
    before = run.machine.model_copy(deep=True)
    with pytest.raises(InvalidMetadata, match=r"metadata\.cfg"):
        run.event("DESTROY", {"cfg": {"a": 1}})
    assert run.machine == before


# ---- external events: actions -----------------------------------------------------------


def test_advance_enters_the_target_state() -> None:
    run = Run(PREVIEW)
    decision = run.event("LAUNCH", {"branch": "feat-1"})
    m = run.machine
    assert decision.outcome is Outcome.APPLIED
    assert (m.state, m.previous_state, m.epoch, m.status) == ("PROVISION", "INIT", 2, "running")
    assert m.metadata == {"branch": "feat-1"}
    assert kinds(decision) == ["event", "transition"]
    event, transition = decision.history
    assert (event.event, event.source, event.state, event.epoch) == ("LAUNCH", "api", "INIT", 1)
    assert (transition.from_state, transition.to_state, transition.epoch) == (
        "INIT",
        "PROVISION",
        2,
    )
    assert [h.seq for h in decision.history] == [2, 3]
    assert (
        "Machine State Changed",
        {"machine_id": "m-1", "spec": "preview-env", "from": "INIT", "to": "PROVISION", "epoch": 2},
    ) in published(decision)
    record = m.tasks["db-setup"]
    assert (record.status, record.attempt, record.state, record.epoch) == (
        "pending",
        1,
        "PROVISION",
        2,
    )
    [start] = starts(decision)
    inv = start.invocation
    assert (inv.machine_id, inv.spec, inv.state, inv.task, inv.epoch, inv.attempt) == (
        "m-1",
        "preview-env",
        "PROVISION",
        "db-setup",
        2,
        1,
    )
    assert inv.metadata == {"branch": "feat-1"}
    assert inv.timeout_seconds == 900
    assert inv.run_key == "m-1:2:db-setup:1"


@pytest.mark.parametrize("event", ["PING", "POKE"])  # no-op, and an empty handler
def test_no_op_and_empty_handlers_merge_metadata_and_change_nothing_else(event: str) -> None:
    run = Run(RICH, metadata={"keep": 1, "over": "old"})
    before = run.machine
    decision = run.event(event, {"over": "new", "added": None})
    m = run.machine
    assert decision.outcome is Outcome.APPLIED and decision.machine is not None
    assert (m.state, m.epoch, m.status, m.tasks) == (
        before.state,
        before.epoch,
        before.status,
        before.tasks,
    )
    assert m.metadata == {"keep": 1, "over": "new", "added": None}
    assert kinds(decision) == ["event"]
    assert decision.effects == ()
    assert m.version == before.version + 1


def test_re_entering_a_state_bumps_the_epoch_cancels_and_restarts_its_tasks() -> None:
    run = Run(RICH)
    run.event("LAUNCH")
    run.start()
    run.finish("test")
    decision = run.event("RESET")
    m = run.machine
    assert (m.state, m.previous_state, m.epoch) == ("BUILD", "BUILD", 3)
    assert kinds(decision) == ["event", "task_cancelled", "transition"]
    cancels = [e for e in decision.effects if isinstance(e, engine.CancelTask)]
    assert [(c.task, c.run_id, c.executor) for c in cancels] == [
        ("compile", "run-compile-2-1", "lambda")
    ]
    assert {n: (r.status, r.epoch, r.attempt) for n, r in m.tasks.items()} == {
        "compile": ("pending", 3, 1),
        "test": ("pending", 3, 1),
    }
    assert sorted(s.invocation.task for s in starts(decision)) == ["compile", "test"]


def test_leaving_a_state_cancels_its_unfinished_tasks_and_a_bare_terminal_deletes() -> None:
    run = Run(RICH)
    run.event("LAUNCH")
    run.start("compile")  # test stays pending: its start was never confirmed
    decision = run.event("ABORT")
    assert decision.deleted and run.gone
    final = decision.machine
    assert final is not None and final.state == "GONE" and final.epoch == 3
    assert {n: r.status for n, r in final.tasks.items()} == {
        "compile": "cancelled",
        "test": "cancelled",
    }
    cancels = [e for e in decision.effects if isinstance(e, engine.CancelTask)]
    assert [c.task for c in cancels] == ["compile"]  # only a run with an id can be stopped
    assert (
        "Machine Deleted",
        {"machine_id": "m-1", "spec": "rich", "state": "GONE", "epoch": 3},
    ) in published(decision)
    assert Delete("m-1") in decision.effects


def test_records_of_earlier_states_are_kept_with_their_state_and_epoch() -> None:
    run = Run(PREVIEW)
    run.event("LAUNCH")
    run.start()
    run.finish("db-setup", output={"url": "https://env.example"})
    run.system("NEXT")
    m = run.machine
    assert (m.state, m.epoch, m.status) == ("RUN", 3, "waiting")
    record = m.tasks["db-setup"]
    assert (record.state, record.epoch, record.status, record.output) == (
        "PROVISION",
        2,
        "succeeded",
        {"url": "https://env.example"},
    )
    assert m.current_tasks() == {}
    # ... and the next state's tasks see them as outputs.
    decision = run.event("DESTROY")
    [start] = starts(decision)
    assert start.invocation.outputs == {"db-setup": {"url": "https://env.example"}}
    assert start.invocation.timeout_seconds == 3600  # terraform's default


# ---- metadata (docs/runtime.md#metadata) ----------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ({"nested": {"a": 1}}, "metadata.nested"),
        ({"list": [1, 2]}, "metadata.list"),
        ({"ok": 1, "nan": float("nan")}, "metadata.nan"),
        ({"inf": float("inf")}, "metadata.inf"),
        (["not", "an", "object"], "JSON object"),
        ("text", "JSON object"),
        ({1: "int key"}, "keys must be strings"),
        ({"nul": "a\x00b"}, "NUL"),
        ({"half": "\ud800"}, "surrogate"),
        ({"k\x00": "v"}, "a metadata key"),
    ],
)
def test_metadata_must_be_a_flat_object(metadata: Any, key: str) -> None:
    run = Run(PREVIEW)
    with pytest.raises(InvalidMetadata, match=key):
        run.event("LAUNCH", metadata)
    with pytest.raises(InvalidMetadata, match=key):
        engine.create(PREVIEW, Create("m", metadata), T0)


def test_flat_values_of_every_json_kind_are_accepted() -> None:
    values = {"s": "x", "i": -3, "f": 2.5, "t": True, "n": None, "empty": ""}
    run = Run(PREVIEW, metadata={"s": "old"})
    run.event("LAUNCH", values)
    assert run.machine.metadata == values


def test_an_external_event_records_its_source() -> None:
    run = Run(PREVIEW)
    decision = run.apply(ExternalEvent("LAUNCH", None, source="bus:my.app"))
    assert decision.history[0].source == "bus:my.app"
