"""The sparse due index (statewright.due), in every store: the reconciler reads machines
with work — pending or running tasks, a published NEXT/FAILED not yet applied — and
never an idle one."""

from __future__ import annotations

from typing import Any

import pytest
from statewright.due import due_at
from statewright.errors import VersionConflict
from statewright.model import Machine, TaskRecord
from statewright.ports import Store

from tests.contract.test_store_contract import NOW, machine

EARLIER = "2026-01-02T03:00:00.000Z"
LATER = "2026-01-02T04:00:00.000Z"


def task(status: str, **kw: Any) -> TaskRecord:
    return TaskRecord.model_validate(
        {"executor": "lambda", "status": status, "state": "BUILD", "epoch": 2, **kw}
    )


def idle(machine_id: str) -> Machine:
    """Satisfied and waiting for an event: nothing for the reconciler."""
    return machine(
        machine_id,
        state="BUILD",
        status="waiting",
        epoch=2,
        tasks={"build": task("succeeded", attempt=1, started_at=EARLIER, finished_at=NOW)},
        published={"NEXT": 2},
        applied={"NEXT": 2},
    )


def pending(machine_id: str, **kw: Any) -> Machine:
    return machine(
        machine_id, state="BUILD", epoch=2, tasks={"build": task("pending", attempt=1, **kw)}
    )


def running(machine_id: str, started_at: str = EARLIER) -> Machine:
    return machine(
        machine_id,
        state="BUILD",
        epoch=2,
        tasks={"build": task("running", attempt=1, started_at=started_at, run_id="r-1")},
    )


def ids(store: Store, until: str | None = None, page_size: int = 100) -> list[str]:
    return sorted(m.id for m in store.due_machines(until=until, page_size=page_size))


def test_idle_machines_are_not_in_the_index(store: Store) -> None:
    store.create(idle("idle-1"))
    store.create(machine("fresh", status="waiting"))  # INIT without tasks, satisfied
    failed = idle("failed-no-handler").model_copy(
        update={"status": "failed", "tasks": {"build": task("failed", attempt=1)}}
    )
    store.create(failed)  # failed, nothing published, nothing in flight
    assert ids(store) == []
    assert ids(store, until=LATER) == []


def test_pending_running_and_unapplied_system_events_are_in_it(store: Store) -> None:
    store.create(idle("idle"))
    store.create(pending("pending"))
    store.create(running("running"))
    next_lost = idle("next-in-flight").model_copy(update={"status": "running", "applied": {}})
    store.create(next_lost)
    failed_lost = idle("failed-in-flight").model_copy(
        update={
            "status": "failed",
            "tasks": {"build": task("failed", attempt=1)},
            "published": {"FAILED": 2},
            "applied": {},
        }
    )
    store.create(failed_lost)
    # Expired in a state that did not take its expire event: sent again where one does.
    store.create(
        idle("expire-pending").model_copy(update={"expired": True, "expire_pending": True})
    )
    found = {m.id: m for m in store.due_machines(until=NOW)}
    assert sorted(found) == [
        "expire-pending",
        "failed-in-flight",
        "next-in-flight",
        "pending",
        "running",
    ]
    # What the index hands out is the stored machine itself.
    assert found["running"] == running("running")


def test_only_machines_due_by_until_are_read(store: Store) -> None:
    store.create(pending("backoff", not_before=LATER))  # a retry waiting out its backoff
    store.create(running("started", started_at=EARLIER))
    assert due_at(pending("backoff", not_before=LATER)) == LATER
    assert ids(store, until=NOW) == ["started"]
    assert ids(store, until=LATER) == ["backoff", "started"]
    assert ids(store) == ["backoff", "started"]  # until None: every machine with work


def test_writes_move_a_machine_in_and_out_of_the_index(store: Store) -> None:
    store.create(idle("m"))
    assert ids(store) == []
    woken = running("m").model_copy(update={"version": 2})
    store.update(woken, 1)
    assert ids(store) == ["m"]
    settled = idle("m").model_copy(update={"version": 3})
    store.update(settled, 2)
    assert ids(store) == []
    store.update(pending("m").model_copy(update={"version": 4}), 3)
    assert ids(store) == ["m"]
    store.delete("m", 4)
    assert ids(store) == []


def test_a_conflicting_write_leaves_the_index_as_it_was(store: Store) -> None:
    store.create(idle("m"))
    with pytest.raises(VersionConflict):
        store.update(running("m").model_copy(update={"version": 9}), 8)
    assert ids(store) == []


@pytest.mark.parametrize("page_size", [1, 7, 100])
def test_paging_reads_every_due_machine_exactly_once(store: Store, page_size: int) -> None:
    due = [f"m-{n:03d}" for n in range(23)]
    for n, machine_id in enumerate(due):
        # Several due times, so pages cross both due times and (on DynamoDB) shards.
        store.create(running(machine_id, started_at=[EARLIER, NOW][n % 2]))
    for n in range(5):
        store.create(idle(f"idle-{n}"))
    read = [m.id for m in store.due_machines(until=NOW, page_size=page_size)]
    assert sorted(read) == due
    assert len(read) == len(set(read))
