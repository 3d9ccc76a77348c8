"""The service over a real SQLite file: load, decide, conditional write, effects."""

from __future__ import annotations

import re
import threading

import pytest
from statewright.errors import (
    ConfigurationError,
    Conflict,
    EventNotAccepted,
    InvalidMetadata,
    InvalidRequest,
    MachineExists,
    MachineNotFound,
    NothingToRetry,
    ReservedEvent,
    SpecNotFound,
    UnknownEvent,
    UnknownSpec,
    VersionConflict,
)
from statewright.model import MACHINE_ID_PATTERN, Machine
from statewright.service import Outcome

from tests.integration.service.harness import Harness

# ---- specs and queries -------------------------------------------------------------------


def test_specs_are_listed_by_name_and_unknown_ones_are_named(h: Harness) -> None:
    assert [s.name for s in h.service.list_specs()] == ["preview-env", "rich"]
    assert h.service.get_spec("rich").name == "rich"
    with pytest.raises(SpecNotFound, match="loaded specs: preview-env, rich"):
        h.service.get_spec("nope")


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_page_limits_outside_1_to_1000_are_invalid(h: Harness, limit: int) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        h.service.list_machines(limit=limit)
    h.service.create_machine("rich", "m")
    with pytest.raises(InvalidRequest, match="limit"):
        h.service.history("m", limit=limit)


def test_listing_and_history_page_through_the_store(h: Harness) -> None:
    for i in range(5):
        h.service.create_machine("rich", f"m-{i}")
        h.service.send_event(f"m-{i}", "PING")
    h.service.create_machine("preview-env", "p")
    page, token = h.service.list_machines(spec="rich", limit=3)
    assert [m.id for m in page] == ["m-0", "m-1", "m-2"] and token
    rest, end = h.service.list_machines(spec="rich", limit=3, next_token=token)
    assert [m.id for m in rest] == ["m-3", "m-4"] and end is None
    entries, _ = h.service.history("m-0")
    assert [(e.kind, e.event) for e in entries] == [("created", None), ("event", "PING")]


# ---- create ---------------------------------------------------------------------------


def test_create_stores_the_machine_its_history_and_its_spec(h: Harness) -> None:
    machine = h.service.create_machine("preview-env", "env-1", {"team": "web"})
    assert machine == h.service.get_machine("env-1")
    assert (machine.state, machine.epoch, machine.status, machine.version) == (
        "INIT",
        1,
        "waiting",
        1,
    )
    assert h.store.get_spec(machine.spec_digest) is not None
    assert [e.kind for e in h.service.history("env-1")[0]] == ["created"]
    assert h.bus.of_type("Machine State Changed") == [
        {"machine_id": "env-1", "spec": "preview-env", "from": None, "to": "INIT", "epoch": 1}
    ]


def test_create_generates_a_valid_id_when_none_is_given(h: Harness) -> None:
    one = h.service.create_machine("rich")
    two = h.service.create_machine("rich")
    assert re.match(MACHINE_ID_PATTERN, one.id) and one.id != two.id


def test_create_refusals_store_nothing(h: Harness) -> None:
    h.service.create_machine("rich", "taken")
    with pytest.raises(MachineExists):
        h.service.create_machine("rich", "taken")
    with pytest.raises(UnknownSpec, match="loaded specs: preview-env, rich"):
        h.service.create_machine("nope", "x1")
    with pytest.raises(InvalidRequest, match="machine id"):
        h.service.create_machine("rich", "../x")
    with pytest.raises(InvalidMetadata, match=r"metadata\.deep"):
        h.service.create_machine("rich", "x2", {"deep": {"a": 1}})  # type: ignore[dict-item]
    assert [m.id for m in h.service.list_machines()[0]] == ["taken"]


# ---- a whole lifecycle -----------------------------------------------------------------


def test_the_seed_example_runs_from_launch_to_deletion(h: Harness) -> None:
    h.service.create_machine("preview-env", "env-1")
    launched = h.service.send_event("env-1", "LAUNCH", {"branch": "feat"})
    assert (launched.state, launched.epoch, launched.status) == ("PROVISION", 2, "running")
    record = launched.tasks["db-setup"]
    # the returned machine already carries the follow-up write of the task start
    assert (record.status, record.run_id) == ("running", "lambda:env-1:2:db-setup:1")
    assert launched == h.service.get_machine("env-1")
    [invocation] = h.executors["lambda"].started
    assert (invocation.task, invocation.metadata, invocation.outputs) == (
        "db-setup",
        {"branch": "feat"},
        {},
    )

    assert h.finish("env-1", "db-setup", output={"url": "https://feat.example"}) is Outcome.APPLIED
    assert h.bus.system_events() == [("env-1", "NEXT", 2)]
    assert h.bus.deliver(h.service) == [Outcome.APPLIED]
    running = h.service.get_machine("env-1")
    assert (running.state, running.epoch, running.status) == ("RUN", 3, "waiting")

    destroyed = h.service.send_event("env-1", "DESTROY")
    assert destroyed.state == "TEARDOWN"
    [teardown] = h.executors["terraform"].started
    assert teardown.outputs == {"db-setup": {"url": "https://feat.example"}}
    assert h.finish("env-1", "db-teardown") is Outcome.APPLIED
    assert h.machine("env-1") is None
    with pytest.raises(MachineNotFound):
        h.service.get_machine("env-1")
    with pytest.raises(MachineNotFound):
        h.service.history("env-1")
    assert h.store.history("env-1") == ([], None)
    assert h.bus.of_type("Machine Deleted") == [
        {"machine_id": "env-1", "spec": "preview-env", "state": "TEARDOWN", "epoch": 4}
    ]
    assert [d["to"] for d in h.bus.of_type("Machine State Changed")] == [
        "INIT",
        "PROVISION",
        "RUN",
        "TEARDOWN",
    ]
    assert h.metrics.counts["transitions"] == 3 and h.metrics.counts["machines_deleted"] == 1


def test_every_bus_event_delivered_twice_ends_in_the_same_state(h: Harness) -> None:
    h.service.create_machine("preview-env", "env-2")
    h.service.send_event("env-2", "LAUNCH")
    assert h.finish("env-2", "db-setup") is Outcome.APPLIED
    assert h.finish("env-2", "db-setup") is Outcome.DUPLICATE
    assert h.bus.deliver(h.service, times=2) == [Outcome.APPLIED, Outcome.DUPLICATE]
    machine = h.service.get_machine("env-2")
    assert (machine.state, machine.epoch) == ("RUN", 3)
    assert h.metrics.counts["events_duplicate"] == 2 and "events_stale" not in h.metrics.counts


def test_a_transition_that_deletes_returns_the_machine_as_it_was_deleted(h: Harness) -> None:
    h.service.create_machine("rich", "r")
    h.service.send_event("r", "LAUNCH")
    final = h.service.send_event("r", "ABORT")
    assert (final.state, final.epoch) == ("GONE", 3)
    assert {n: t.status for n, t in final.tasks.items()} == {
        "compile": "cancelled",
        "test": "cancelled",
    }
    assert h.machine("r") is None
    # both running tasks were stopped through their executor
    assert sorted(h.executors["lambda"].cancelled) == ["lambda:r:2:compile:1", "lambda:r:2:test:1"]


# ---- external events through the API --------------------------------------------------


def test_refused_events_raise_the_domain_error_and_change_nothing(h: Harness) -> None:
    h.service.create_machine("preview-env", "e")
    before = h.service.get_machine("e")
    for event, error in (
        ("NEXT", ReservedEvent),
        ("NOPE", UnknownEvent),
        ("DESTROY", EventNotAccepted),
    ):
        with pytest.raises(error):
            h.service.send_event("e", event)
    with pytest.raises(MachineNotFound):
        h.service.send_event("ghost", "LAUNCH")
    assert h.service.get_machine("e") == before


def test_an_event_with_spec_creates_the_machine_on_first_appearance(h: Harness) -> None:
    machine = h.service.send_event("fresh", "LAUNCH", {"k": "v"}, spec="preview-env")
    assert (machine.state, machine.epoch, machine.metadata) == ("PROVISION", 2, {"k": "v"})
    kinds = [e.kind for e in h.service.history("fresh")[0]]
    assert kinds == ["created", "event", "transition", "task_started"]
    # the second time, the machine exists and only the event applies
    with pytest.raises(EventNotAccepted):
        h.service.send_event("fresh", "LAUNCH", spec="preview-env")


def test_a_refused_first_event_creates_nothing(h: Harness) -> None:
    with pytest.raises(EventNotAccepted):
        h.service.send_event("fresh", "DESTROY", spec="preview-env")
    with pytest.raises(UnknownSpec):
        h.service.send_event("fresh", "LAUNCH", spec="nope")
    assert h.machine("fresh") is None
    assert h.bus.events == []


def test_an_event_naming_another_spec_than_the_machines_is_refused(h: Harness) -> None:
    h.service.create_machine("rich", "m")
    with pytest.raises(MachineExists, match="runs spec rich"):
        h.service.send_event("m", "PING", spec="preview-env")


# ---- tasks: failures, retry, executors ------------------------------------------------


def test_a_failed_task_fails_the_machine_and_retry_runs_it_again(h: Harness) -> None:
    h.service.create_machine("rich", "r")
    h.service.send_event("r", "LAUNCH")
    h.finish("r", "compile")
    assert h.finish("r", "test", "failed", error="AssertionError: 1 != 2") is Outcome.APPLIED
    failed = h.service.get_machine("r")
    assert failed.status == "failed" and failed.tasks["test"].error == "AssertionError: 1 != 2"
    assert h.metrics.counts["task_failures"] == 1
    retried = h.service.retry("r")
    assert retried.status == "running"
    assert (retried.tasks["test"].attempt, retried.tasks["test"].status) == (2, "running")
    assert [(i.task, i.attempt) for i in h.executors["lambda"].started][-1] == ("test", 2)
    with pytest.raises(NothingToRetry):
        h.service.retry("r")  # nothing failed any more


def test_a_task_whose_executor_is_missing_fails_with_a_clear_error(h: Harness) -> None:
    del h.executors["terraform"]
    h.service.executors = dict(h.executors)
    h.service.create_machine("preview-env", "p")
    h.service.send_event("p", "LAUNCH")
    h.finish("p", "db-setup")
    h.bus.deliver(h.service)
    machine = h.service.send_event("p", "DESTROY")
    record = machine.tasks["db-teardown"]
    assert record.status == "failed"
    assert (
        record.error
        == "no 'terraform' executor is configured in this control plane; available: lambda"
    )
    assert record.error_type == "StartFailed"
    assert machine.status == "failed"


def test_an_executor_that_cannot_start_fails_the_attempt_with_its_message(h: Harness) -> None:
    h.executors["lambda"].refuse = ConfigurationError(
        "function compile.py not found in ./functions"
    )
    h.service.create_machine("rich", "r")
    machine = h.service.send_event("r", "LAUNCH")
    # compile has 3 attempts with a backoff of 10 s, doubling: each start is refused at
    # once, and each next attempt starts when its timer fires
    assert (machine.tasks["compile"].status, machine.tasks["compile"].attempt) == ("pending", 2)
    assert h.fire_timers(10) == [Outcome.APPLIED]
    assert h.service.get_machine("r").tasks["compile"].attempt == 3
    assert h.fire_timers(20) == [Outcome.APPLIED]
    machine = h.service.get_machine("r")
    assert (machine.tasks["compile"].status, machine.tasks["compile"].attempt) == ("failed", 3)
    assert [i.attempt for i in h.executors["lambda"].started if i.task == "compile"] == [1, 2, 3]
    assert machine.tasks["test"].status == "failed"
    assert machine.tasks["test"].error == "function compile.py not found in ./functions"


def test_a_result_that_arrives_before_the_start_is_recorded_still_counts(h: Harness) -> None:
    def report_at_once(invocation):  # type: ignore[no-untyped-def]
        h.service.handle_bus_event(
            "statewright",
            "Task Finished",
            {
                "machine_id": invocation.machine_id,
                "epoch": invocation.epoch,
                "task": invocation.task,
                "attempt": invocation.attempt,
                "status": "succeeded",
                "output": {"fast": True},
            },
        )

    h.executors["lambda"].on_start = report_at_once
    h.service.create_machine("preview-env", "fast")
    machine = h.service.send_event("fast", "LAUNCH")
    assert machine.tasks["db-setup"].status == "succeeded"
    assert machine.tasks["db-setup"].output == {"fast": True}
    assert h.bus.system_events() == [("fast", "NEXT", 2)]
    assert h.bus.deliver(h.service) == [Outcome.APPLIED]
    assert h.service.get_machine("fast").state == "RUN"


# ---- the bus -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "detail_type", "detail"),
    [
        ("my.app", "Machine Event", {"machine_id": "ghost", "event": "LAUNCH"}),
        ("my.app", "Machine Event", {"machine_id": "b", "event": "NOPE"}),
        ("my.app", "Machine Event", {"machine_id": "b", "event": "DESTROY"}),
        ("my.app", "Machine Event", {"machine_id": "b", "event": "NEXT", "epoch": 1}),
        ("statewright", "Machine Event", {"machine_id": "b", "event": "NEXT"}),
        ("statewright", "Machine Event", {"machine_id": "b", "event": "NEXT", "epoch": "1"}),
        ("my.app", "Machine Event", {"machine_id": "b", "event": "LAUNCH", "metadata": {"x": [1]}}),
        (
            "my.app",
            "Machine Event",
            {"machine_id": "b", "event": "LAUNCH", "metadata": {"stack_id": "other"}},
        ),
        (
            "my.app",
            "Machine Event",
            {
                "machine_id": "new",
                "event": "LAUNCH",
                "spec": "preview-env",
                "metadata": {"statewright_state_key": "x"},
            },
        ),
        ("my.app", "Machine Event", {"machine_id": "../b", "event": "LAUNCH"}),
        ("my.app", "Machine Event", {"event": "LAUNCH"}),
        ("my.app", "Machine Event", {"machine_id": "new", "event": "LAUNCH", "spec": "nope"}),
        (
            "my.app",
            "Task Finished",
            {"machine_id": "b", "epoch": 1, "task": "x", "attempt": 1, "status": "succeeded"},
        ),
        ("statewright", "Task Finished", {"machine_id": "b", "epoch": 1}),
        (
            "statewright",
            "Task Finished",
            {"machine_id": "b", "epoch": 1, "task": "x", "attempt": 1, "status": "succeeded"},
        ),
        ("statewright", "Something Else", {}),
    ],
)
def test_refused_bus_events_never_raise_and_are_counted(
    h: Harness, source: str, detail_type: str, detail: dict[str, object]
) -> None:
    h.service.create_machine("preview-env", "b")
    before = h.service.get_machine("b")
    assert h.service.handle_bus_event(source, detail_type, detail) is Outcome.REFUSED
    assert h.service.get_machine("b") == before
    assert h.machine("new") is None
    assert h.metrics.counts["events_refused"] == 1


def test_users_rules_send_external_events_and_cloudseams_shape_creates(h: Harness) -> None:
    outcome = h.service.handle_bus_event(
        "cloudseam",
        "Machine Event",
        {"stackId": "stack-7", "machine": "preview-env", "action": "LAUNCH"},
    )
    assert outcome is Outcome.APPLIED
    machine = h.service.get_machine("stack-7")
    assert (machine.spec, machine.state) == ("preview-env", "PROVISION")
    history = h.service.history("stack-7")[0]
    assert [(e.kind, e.source, e.actor) for e in history][:2] == [
        ("created", "bus:cloudseam", "bus:cloudseam"),
        ("event", "bus:cloudseam", "bus:cloudseam"),
    ]
    outcome = h.service.handle_bus_event(
        "aws.scheduler", "Machine Event", {"machine_id": "stack-7", "event": "LAUNCH"}
    )
    assert outcome is Outcome.REFUSED  # not accepted in PROVISION


# ---- concurrency --------------------------------------------------------------------------


def test_forty_concurrent_events_on_one_machine_lose_no_metadata(h: Harness) -> None:
    h.service.create_machine("rich", "hot")
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            h.service.send_event("hot", "PING", {f"k{n}": n})
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    machine = h.service.get_machine("hot")
    assert machine.metadata == {f"k{n}": n for n in range(40)}
    assert machine.version == 41
    entries, _ = h.service.history("hot", limit=1000)
    assert [e.seq for e in entries] == list(range(1, 42))


# ---- recovery -----------------------------------------------------------------------------


def crash_after_write(h: Harness, machine_id: str, event: str) -> None:
    """Apply ``event`` as if the process died right after the conditional write: the
    machine is stored, none of its effects ran."""
    from statewright import engine

    current = h.service.get_machine(machine_id)
    spec = h.service.catalog.resolve(current.spec_digest, h.store)
    decision = engine.decide(current, spec, engine.ExternalEvent(event), h.clock())
    assert decision.machine is not None
    h.store.update(
        decision.machine.model_copy(update={"version": current.version + 1}),
        current.version,
        decision.history,
    )


def test_recover_starts_tasks_whose_start_was_lost(h: Harness) -> None:
    h.service.create_machine("rich", "lost")
    crash_after_write(h, "lost", "LAUNCH")
    assert h.executors["lambda"].started == []
    report = h.service.recover()
    assert (report.machines_scanned, report.machines_repaired, report.tasks_started) == (1, 1, 2)
    machine = h.service.get_machine("lost")
    assert {n: t.status for n, t in machine.current_tasks().items()} == {
        "compile": "running",
        "test": "running",
    }
    # once recorded as running, a second pass has nothing to do
    assert h.service.recover().machines_repaired == 0


def test_recover_after_a_crash_restarts_running_tasks_and_republishes_next(h: Harness) -> None:
    h.service.create_machine("rich", "a")
    h.service.send_event("a", "LAUNCH")
    h.service.create_machine("preview-env", "b")
    h.service.send_event("b", "LAUNCH")
    h.finish("b", "db-setup")
    h.bus.events.clear()  # the NEXT was lost with the process
    h.bus.delivered = 0
    started_before = len(h.executors["lambda"].started)
    report = h.service.recover(restart_running=True)
    assert report.tasks_started == 2 and report.events_published == 1
    restarted = h.executors["lambda"].started[started_before:]
    assert sorted(i.run_key for i in restarted) == ["a:2:compile:1", "a:2:test:1"]
    assert h.bus.system_events() == [("b", "NEXT", 2)]
    h.bus.deliver(h.service)
    assert h.service.get_machine("b").state == "RUN"


def test_recover_fails_tasks_past_their_timeout(h: Harness) -> None:
    h.service.create_machine("rich", "slow")
    h.service.send_event("slow", "LAUNCH")
    h.finish("slow", "compile")
    h.clock.seconds = 899
    assert h.service.recover().tasks_timed_out == 0
    h.clock.seconds = 900
    report = h.service.recover()
    assert report.tasks_timed_out == 1
    machine = h.service.get_machine("slow")
    assert (machine.tasks["test"].status, machine.tasks["test"].error) == (
        "failed",
        "timed out after 900 seconds",
    )
    assert machine.status == "failed"
    assert "lambda:slow:2:test:1" in h.executors["lambda"].cancelled


def test_a_bus_event_that_keeps_conflicting_raises_so_the_bus_retries_it(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.service.create_machine("rich", "busy")
    h.store.deadline_seconds = 0.05

    def always_conflict(machine: Machine, expected_version: int, history: object = ()) -> None:
        raise VersionConflict(machine.id)

    monkeypatch.setattr(h.store, "update", always_conflict)
    with pytest.raises(Conflict):
        h.service.handle_bus_event(
            "my.app", "Machine Event", {"machine_id": "busy", "event": "PING"}
        )
    assert h.metrics.counts["conflicts"] >= 1
    assert "events_refused" not in h.metrics.counts


def test_a_detail_that_is_not_an_object_is_refused(h: Harness) -> None:
    outcome = h.service.handle_bus_event("my.app", "Machine Event", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert outcome is Outcome.REFUSED
