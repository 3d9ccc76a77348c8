"""The Machine row: what older versions stored still reads as the same machine."""

from __future__ import annotations

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
