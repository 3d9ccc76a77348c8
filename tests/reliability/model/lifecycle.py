"""The spec the model-based tests drive: every kind of handler (advance, no-op, an empty
handler, re-entering the same state, FAILED, a NEXT handled by no-op), two tasks in one
state, a task shared by two states, a retry policy, a terminal state with a task and one
without. The model reads the plain dict; the service gets the same document as a Spec."""

from __future__ import annotations

from typing import Any

from statewright.spec.models import Spec


def _advance(state: str) -> list[dict[str, str]]:
    return [{"action": "advance", "state": state}]


NOOP = [{"action": "no-op"}]
NAME = "lifecycle"

DOCUMENT: dict[str, Any] = {
    "events": ["LAUNCH", "DESTROY", "PING", "POKE", "RESET", "ABORT", "SOAK"],
    "states": {
        "INIT": {"on": {"LAUNCH": _advance("BUILD"), "PING": NOOP, "POKE": []}},
        "BUILD": {
            "tasks": ["compile", "test"],
            "on": {
                "NEXT": _advance("RUN"),
                "FAILED": _advance("FIXING"),
                "ABORT": _advance("GONE"),
                "RESET": _advance("BUILD"),
                "PING": NOOP,
            },
        },
        "RUN": {
            "on": {
                "DESTROY": _advance("TEARDOWN"),
                "SOAK": _advance("SOAKING"),
                "ABORT": _advance("GONE"),
                "PING": NOOP,
            }
        },
        "FIXING": {"on": {"RESET": _advance("BUILD"), "ABORT": _advance("GONE")}},
        "SOAKING": {
            "tasks": ["soak", "test"],
            "on": {"NEXT": NOOP, "FAILED": NOOP, "DESTROY": _advance("TEARDOWN")},
        },
        "TEARDOWN": {"terminal": True, "tasks": ["teardown"]},
        "GONE": {"terminal": True},
    },
    "tasks": {
        "compile": {
            "executor": "lambda",
            "config": {"name": "compile"},
            "retry": {"attempts": 2, "backoff_seconds": 0},
        },
        "test": {"executor": "lambda", "config": {"name": "test"}},
        "soak": {
            "executor": "terraform",
            "config": {"action": "apply", "source": {"type": "local", "location": "/m"}},
        },
        "teardown": {
            "executor": "terraform",
            "config": {"action": "destroy", "source": {"type": "local", "location": "/m"}},
        },
    },
}

SPEC = Spec.model_validate({"name": NAME, **DOCUMENT})
# Events a sender may try: the declared ones, a reserved one and an unknown one.
EVENTS_TRIED = [*DOCUMENT["events"], "NEXT", "FAILED", "launch", "NOPE"]
