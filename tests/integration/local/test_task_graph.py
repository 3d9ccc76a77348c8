"""Task graphs and references on a real `statewright serve` (SQLite, subprocess
functions, the real terraform binary): tasks start in the order their `needs` give, a
Terraform task's variables take a Lambda task's output by reference with its JSON
types, a failed need leaves its dependents unstarted until POST /retry, and a
reference to a missing output fails with ReferenceError (docs/spec.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.local.server import Server, in_state
from tests.integration.task_graph import (
    EXPECTED_STORY,
    GRAPH_SPECS,
    terraform_value,
    the_story,
)

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("graph"), specs=[GRAPH_SPECS]) as s:
        yield s


def history(server: Server, machine_id: str) -> list[dict[str, Any]]:
    answer = server.request("GET", f"/machines/{machine_id}/history?limit=1000")
    assert answer.status == 200, answer
    return list(answer.body["entries"])


def first(entries: list[dict[str, Any]], kind: str, task: str) -> int:
    return next(i for i, e in enumerate(entries) if e["kind"] == kind and e.get("task") == task)


def run_graph(server: Server, machine_id: str) -> list[dict[str, Any]]:
    """LAUNCH, see b fail and c wait, retry, reach RUN; the history."""
    created = server.request(
        "POST", "/machines", {"spec": "graph", "id": machine_id, "metadata": {"owner": "ana"}}
    )
    assert created.status == 201, created
    launched = server.request("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})
    assert launched.status == 202, launched
    tasks = launched.body["tasks"]
    # Only a starts on entry; b and c wait for what they need.
    assert tasks["b"]["status"] == "pending" and tasks["b"]["waiting_for"] == ["a"]
    assert tasks["c"]["status"] == "pending" and tasks["c"]["waiting_for"] == ["b"]

    failed = server.wait_for(machine_id, in_state("BUILD", "failed"))
    assert failed is not None
    assert failed["tasks"]["a"]["status"] == "succeeded"
    b = failed["tasks"]["b"]
    assert (b["status"], b["attempt"]) == ("failed", 1)
    assert "the first attempt fails" in b["error"]
    c = failed["tasks"]["c"]
    assert (c["status"], c["started_at"], c["waiting_for"]) == ("pending", None, ["b"])

    retried = server.request("POST", f"/machines/{machine_id}/retry")
    assert retried.status == 202, retried
    done = server.wait_for(machine_id, in_state("RUN"))
    assert done is not None
    assert done["tasks"]["b"]["attempt"] == 2
    # b got a's output by reference.
    assert done["tasks"]["b"]["output"]["args"]["host"] == "db.internal"
    return history(server, machine_id)


def test_tasks_start_in_order_and_references_keep_their_types(server: Server) -> None:
    entries = run_graph(server, "graph-1")
    assert first(entries, "task_finished", "a") < first(entries, "task_started", "b")
    assert first(entries, "retry", None) < first(entries, "task_started", "c")
    assert not any(
        e["kind"] == "task_started" and e.get("task") == "c" and e["attempt"] != 1 for e in entries
    )
    machine = server.machine("graph-1")
    assert machine is not None
    c = machine["tasks"]["c"]
    assert c["status"] == "succeeded" and c["executor"] == "terraform"
    out = c["output"]
    assert terraform_value(out, "host") == "db.internal"
    assert terraform_value(out, "port") == 5432  # a number, as a's output holds it
    assert terraform_value(out, "tags") == ["blue", "green"]
    assert terraform_value(out, "ready") is True
    assert terraform_value(out, "url") == "http://db.internal:5432/graph-1"
    assert terraform_value(out, "owner") == "ana"


def test_a_reference_to_a_missing_output_fails_with_reference_error(server: Server) -> None:
    run_graph(server, "graph-2")
    broken = server.request("POST", "/machines/graph-2/events", {"event": "BREAK"})
    assert broken.status == 202, broken
    machine = server.wait_for("graph-2", in_state("BROKEN", "failed"))
    assert machine is not None
    d = machine["tasks"]["d"]
    assert (d["status"], d["error_type"], d["attempt"]) == ("failed", "ReferenceError", 1)
    assert "tasks.a.outputs.no_such_output" in d["error"]
    assert "config.args.missing" in d["error"]


def test_the_history_tells_the_story_the_aws_dispatcher_tells(server: Server) -> None:
    """The same story tests/integration/aws/test_task_graph.py checks on AWS."""
    assert the_story(run_graph(server, "graph-3")) == EXPECTED_STORY
