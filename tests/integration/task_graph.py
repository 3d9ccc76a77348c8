"""The task-graph spec both modes run (tests/integration/local/fixtures/graph/graph.yml)
and the story its history must tell, locally and through the AWS dispatcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GRAPH_SPECS = Path(__file__).resolve().parent / "local" / "fixtures" / "graph"

# LAUNCH; a succeeds, b fails its first attempt, c waits; POST /retry; b and then c
# succeed; NEXT moves the machine on.
EXPECTED_STORY: list[tuple[Any, ...]] = [
    ("created", None, "INIT"),
    ("event", "LAUNCH", None),
    ("transition", "LAUNCH", "BUILD"),
    ("task_finished", "a", 1, "succeeded"),
    ("task_finished", "b", 1, "failed"),
    ("retry", None, None),
    ("task_finished", "b", 2, "succeeded"),
    ("task_finished", "c", 1, "succeeded"),
    ("event", "NEXT", None),
    ("transition", "NEXT", "RUN"),
]


def the_story(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a run's history tells, without timing: events, transitions, task results
    (a fast task's `task_started` may be folded into its result)."""
    story: list[tuple[Any, ...]] = []
    for e in entries:
        if e["kind"] in ("event", "transition", "created", "retry", "halted"):
            story.append((e["kind"], e.get("event"), e.get("to_state")))
        elif e["kind"] == "task_finished":
            story.append((e["kind"], e["task"], e["attempt"], e["status"]))
    return story


def terraform_value(output: dict[str, Any], name: str) -> Any:
    """A Terraform output's value, whether outputs are kept as `terraform output -json`
    prints them or as `{name: value}`."""
    found = output[name]
    return found["value"] if isinstance(found, dict) and "sensitive" in found else found
