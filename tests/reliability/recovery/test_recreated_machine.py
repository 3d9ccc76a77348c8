"""A machine deleted and created again under the same id runs the same epochs, tasks
and attempts as its predecessor. Its task starts must not be taken for repeats of the
predecessor's (found by the model-based suite: a redelivered LAUNCH with ``spec``
re-created an aborted machine, whose tasks then never ran)."""

from __future__ import annotations

from pathlib import Path

from statewright import LocalControlPlane
from statewright.model import Machine

from tests.integration.local.helpers import FIXTURES


def in_run(machine: Machine | None) -> bool:
    return machine is not None and machine.state == "RUN" and machine.status == "waiting"


def test_a_machine_created_again_under_its_old_id_runs_its_tasks_again(tmp_path: Path) -> None:
    plane = LocalControlPlane(
        specs_dirs=[FIXTURES / "specs"], data_dir=tmp_path, functions_dir=FIXTURES / "functions"
    )
    runs = tmp_path / "runs.txt"
    with plane:
        for life in (1, 2):
            launch = {"event": "LAUNCH", "spec": "jobs", "metadata": {"runs_file": str(runs)}}
            assert plane.request("POST", "/machines/pr-1/events", launch).status == 202
            machine = plane.wait_until("pr-1", in_run, 10)
            assert machine is not None, f"life {life}: the task never ran"
            destroy = {"event": "DESTROY"}
            assert plane.request("POST", "/machines/pr-1/events", destroy).status == 202
            assert plane.request("GET", "/machines/pr-1").status == 404
    # One run per life: the same machine id, epoch, task and attempt each time.
    assert runs.read_text().splitlines() == ["pr-1 2 1", "pr-1 2 1"]
