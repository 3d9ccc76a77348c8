"""The Machine row: what older versions stored still reads as the same machine, and what is
not a machine is refused when a store reads it."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from statewright.model import Machine


def stored(**fields: object) -> dict[str, object]:
    return {"id": "m-1", "spec": "demo", "spec_digest": "sha256:0", "state": "RUN", **fields}


def test_applied_events_stored_inside_published_read_into_applied() -> None:
    machine = Machine.model_validate(
        stored(epoch=3, published={"NEXT": 2, "FAILED": 3, "applied:NEXT": 2})
    )
    assert machine.published == {"NEXT": 2, "FAILED": 3}
    assert machine.applied == {"NEXT": 2}


def test_a_machine_written_today_reads_back_unchanged() -> None:
    machine = Machine.model_validate(stored(published={"NEXT": 2}, applied={"NEXT": 2}))
    assert Machine.model_validate_json(machine.model_dump_json()) == machine
    assert "applied" not in machine.public() and "published" not in machine.public()


def test_old_rows_are_upgraded_when_read_from_json_too() -> None:
    machine = Machine.model_validate_json(
        json.dumps(stored(epoch=3, published={"FAILED": 3, "applied:FAILED": 3}))
    )
    assert machine.published == {"FAILED": 3}
    assert machine.applied == {"FAILED": 3}


@pytest.mark.parametrize(
    "row",
    [
        stored(owner="bo"),  # a field this version does not know
        stored(epoch="three"),
        stored(tasks={"build": {"executor": "lambda", "state": "RUN"}}),  # no epoch
        stored(status="sleeping"),
    ],
)
def test_a_row_that_is_not_a_machine_is_refused_when_read(row: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Machine.model_validate(row)
    with pytest.raises(ValidationError):
        Machine.model_validate_json(json.dumps(row))


def test_a_copy_is_changed_without_changing_the_machine_copied() -> None:
    machine = Machine.model_validate(stored(version=4))
    later = machine.model_copy(update={"version": 5, "state": "TEARDOWN"})
    assert (later.version, later.state) == (5, "TEARDOWN")
    assert (machine.version, machine.state) == (4, "RUN")
    with pytest.raises(TypeError, match="no field 'verison'"):
        machine.model_copy(update={"verison": 5})
