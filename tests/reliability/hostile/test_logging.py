"""What the control plane logs at INFO and above never holds a metadata value or a task
output, even when a hostile bus event carries them in fields that fail validation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.local.control_plane import LocalControlPlane
from statewright.service import Outcome

from tests.integration.local.server import EXAMPLES, FIXTURES
from tests.reliability.figures import record

SECRET = "s3cr3t-value-never-logged"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with LocalControlPlane(
        specs_dirs=[FIXTURES / "specs", EXAMPLES / "specs"], data_dir=tmp_path / "data"
    ) as cp:
        yield cp


@pytest.mark.parametrize(
    "detail_type, detail",
    [
        (
            "Task Finished",
            {
                "machine_id": "m1",
                "epoch": SECRET,
                "task": "work",
                "attempt": 1,
                "status": "succeeded",
                "output": {"password": SECRET},
            },
        ),
        ("Task Finished", {"machine_id": "m1", "status": SECRET, "output": SECRET}),
        ("Machine Event", {"machine_id": "m1", "event": "TOUCH", "metadata": {"k": [SECRET]}}),
        ("Machine Event", {"machine_id": "m1", "event": "TOUCH", "metadata": SECRET}),
    ],
)
def test_refused_bus_events_are_logged_without_their_values(
    plane: LocalControlPlane,
    caplog: pytest.LogCaptureFixture,
    detail_type: str,
    detail: dict[str, object],
) -> None:
    plane.request("POST", "/machines", {"spec": "jobs", "id": "m1"})
    with caplog.at_level(logging.INFO):
        outcome = plane.service.handle_bus_event("statewright", detail_type, detail)
    assert outcome is Outcome.REFUSED
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refusals, "the refusal was not logged"
    for entry in caplog.records:
        if entry.levelno >= logging.INFO:
            assert SECRET not in entry.getMessage(), entry.getMessage()
    record("hostile", inputs=1, secrets_logged=0)
