"""How `machines history` and `watch` write one history entry."""

from __future__ import annotations

from statewright.cli.machines import _history_line


def test_the_end_of_a_run_of_a_state_left_shows_its_task_status_and_error() -> None:
    entry = {
        "kind": "run_finished",
        "at": "2026-03-01T12:00:00.000Z",
        "epoch": 2,
        "state": "PROVISION",
        "task": "env",
        "attempt": 1,
        "status": "failed",
        "error": "the run was stopped (cancel: force, or its timeout)",
        "actor": "statewright",
    }
    line = _history_line(entry).plain
    assert "[epoch 2] run_finished env attempt 1: failed (the run was stopped" in line
