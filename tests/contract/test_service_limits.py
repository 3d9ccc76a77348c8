"""The limits of docs/runtime.md (*Limits*), applied by the engine and so the same over
every store: metadata over 16 KiB is ``metadata_too_large`` and stores nothing; an
output over 32 KiB, or one that would take a machine's outputs past 256 KiB, fails its
attempt with ``OutputTooLarge`` and is not retried; one machine that cannot be
recovered does not stop the others."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from statewright.catalog import SpecCatalog
from statewright.errors import MetadataTooLarge
from statewright.limits import (
    MACHINE_OUTPUTS_MAX_BYTES,
    METADATA_MAX_BYTES,
    TASK_OUTPUT_MAX_BYTES,
)
from statewright.ports import Bus, Executor, Store, TaskInvocation
from statewright.service import Service

from tests.fakes import FakeExecutor, RecordingBus
from tests.integration.service.harness import Clock, Counter
from tests.unit.engine.helpers import RICH, advance, make_spec

WIDE = make_spec(
    "wide",
    {
        "events": ["GO"],
        "states": {
            "INIT": {"on": {"GO": advance("WORK")}},
            "WORK": {"tasks": [f"t{i}" for i in range(9)], "on": {"NEXT": advance("DONE")}},
            "DONE": {"terminal": True},
        },
        "tasks": {f"t{i}": {"executor": "lambda", "config": {"name": f"t{i}"}} for i in range(9)},
    },
)


class Plane:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.bus = RecordingBus()
        self.lam = FakeExecutor("lambda")
        self.metrics = Counter()
        bus: Bus = self.bus
        executors: dict[str, Executor] = {"lambda": self.lam, "terraform": FakeExecutor("tf")}
        self.service = Service(
            store=store,
            bus=bus,
            executors=executors,
            catalog=SpecCatalog([RICH, WIDE]),
            clock=Clock(),
            metrics=self.metrics,
        )

    def finish(self, machine_id: str, task: str, output: Any) -> None:
        record = self.service.get_machine(machine_id).tasks[task]
        detail = {
            "machine_id": machine_id,
            "epoch": record.epoch,
            "task": task,
            "attempt": record.attempt,
            "status": "succeeded",
            "output": output,
        }
        self.service.handle_bus_event("statewright", "Task Finished", detail)


@pytest.fixture
def plane(store: Store) -> Iterator[Plane]:
    yield Plane(store)


def metadata_of(size: int) -> dict[str, str]:
    """Metadata whose compact JSON is exactly ``size`` bytes."""
    padding = size - len(json.dumps({"k": ""}, separators=(",", ":")))
    return {"k": "x" * padding}


def output_of(size: int) -> dict[str, str]:
    return metadata_of(size)


def test_metadata_of_exactly_16_kib_is_kept_and_one_byte_more_is_refused(plane: Plane) -> None:
    assert plane.service.create_machine("rich", "ok", metadata_of(METADATA_MAX_BYTES))
    with pytest.raises(MetadataTooLarge) as refused:
        plane.service.create_machine("rich", "big", metadata_of(METADATA_MAX_BYTES + 1))
    assert f"{METADATA_MAX_BYTES + 1} bytes" in refused.value.message
    assert f"{METADATA_MAX_BYTES} bytes (16 KiB)" in refused.value.message
    assert plane.store.get("big") is None


def test_metadata_merged_past_16_kib_is_refused_and_changes_nothing(plane: Plane) -> None:
    plane.service.create_machine("rich", "m", {"a": "x" * 10_000})
    before = plane.store.get("m")
    with pytest.raises(MetadataTooLarge, match="after merging"):
        plane.service.send_event("m", "PING", {"b": "y" * 7_000})
    assert plane.store.get("m") == before
    # Replacing a value measures the merged result, not the sum.
    plane.service.send_event("m", "PING", {"a": "z" * 15_000})
    assert plane.service.get_machine("m").metadata["a"] == "z" * 15_000


def test_an_output_over_32_kib_fails_the_attempt_without_a_retry(plane: Plane) -> None:
    plane.service.create_machine("rich", "m")
    plane.service.send_event("m", "LAUNCH")
    plane.finish("m", "compile", output_of(TASK_OUTPUT_MAX_BYTES + 1))  # compile retries 3x
    record = plane.service.get_machine("m").tasks["compile"]
    assert (record.status, record.attempt, record.output) == ("failed", 1, None)
    assert record.error_type == "OutputTooLarge"
    assert record.error is not None and f"{TASK_OUTPUT_MAX_BYTES + 1} bytes" in record.error
    assert f"{TASK_OUTPUT_MAX_BYTES} bytes (32 KiB)" in record.error
    assert plane.service.get_machine("m").status == "failed"


def test_an_output_of_exactly_32_kib_is_kept(plane: Plane) -> None:
    plane.service.create_machine("rich", "m")
    plane.service.send_event("m", "LAUNCH")
    plane.finish("m", "compile", output_of(TASK_OUTPUT_MAX_BYTES))
    assert plane.service.get_machine("m").tasks["compile"].status == "succeeded"


def test_the_output_that_takes_a_machine_past_256_kib_fails(plane: Plane) -> None:
    plane.service.create_machine("wide", "w")
    plane.service.send_event("w", "GO")
    each = 30 * 1024
    for i in range(8):
        plane.finish("w", f"t{i}", output_of(each))
    assert 8 * each <= MACHINE_OUTPUTS_MAX_BYTES < 9 * each
    plane.finish("w", "t8", output_of(each))
    machine = plane.service.get_machine("w")
    assert [machine.tasks[f"t{i}"].status for i in range(8)] == ["succeeded"] * 8
    last = machine.tasks["t8"]
    assert (last.status, last.error_type) == ("failed", "OutputTooLarge")
    assert last.error is not None and f"{MACHINE_OUTPUTS_MAX_BYTES} bytes (256 KiB)" in last.error


def test_a_machine_at_every_limit_starts_its_tasks_within_invoke_limits(plane: Plane) -> None:
    """The task event carries the metadata and every output: at the limits it stays far
    below the 1 MB of an asynchronous invoke or an EventBridge entry."""
    plane.service.create_machine("wide", "w", metadata_of(METADATA_MAX_BYTES))
    plane.service.send_event("w", "GO")
    for i in range(8):
        plane.finish("w", f"t{i}", output_of(32 * 1024))
    started = plane.lam.started[-1]
    assert len(started.model_dump_json().encode()) < 1024 * 1024


def test_one_machine_that_cannot_be_recovered_does_not_stop_the_others(plane: Plane) -> None:
    for name in ("a-bad", "b-good", "c-good"):
        plane.service.create_machine("rich", name)
    plane.lam.refuse = None

    def start(invocation: TaskInvocation) -> str:
        plane.lam.started.append(invocation)
        if invocation.machine_id == "a-bad":
            raise RuntimeError("the SDK met something nobody foresaw")
        return f"run-{invocation.machine_id}"

    plane.lam.start = start  # type: ignore[method-assign]
    # Every machine enters BUILD; the starts are lost (as in a crash), so they stay pending.
    for name in ("a-bad", "b-good", "c-good"):
        with pytest.raises(RuntimeError) if name == "a-bad" else contextlib.nullcontext():
            plane.service.send_event(name, "LAUNCH")
    report = plane.service.recover(restart_running=True)
    assert report.machines_scanned == 3
    assert [e.split(":")[0] for e in report.errors] == ["a-bad"]
    assert "RuntimeError" in report.errors[0]
    assert plane.metrics.counts.get("recovery_errors") == 1
    for name in ("b-good", "c-good"):
        assert {t.status for t in plane.service.get_machine(name).current_tasks().values()} == {
            "running"
        }
