"""The task-graph spec of tests/integration/local/test_task_graph.py through the AWS
dispatcher under moto: the same order, the same references with the same JSON types in
the build's Terraform variables, the same ReferenceError, the same history."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.integration.aws.deployment import (
    REGION,
    Deployment,
    _zip,
)
from tests.integration.task_graph import EXPECTED_STORY, GRAPH_SPECS, the_story

MACHINE = "g-1"


@pytest.fixture
def graph(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(GRAPH_SPECS))
    lam = boto3.client("lambda", region_name=REGION)
    role = boto3.client("iam", region_name=REGION).get_role(RoleName="statewright-test")
    for name in ("graph_echo", "graph_flaky"):
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": _zip("def handler(event, context):\n    return event\n")},
        )
    return deployment


def deliver_published(dep: Deployment) -> list[str]:
    return [dep.deliver(e) for e in dep.dispatched(dep.published())]


def task(dep: Deployment, name: str) -> dict[str, Any]:
    status, machine = dep.get(MACHINE)
    assert status == 200, machine
    return dict(machine["tasks"][name])


def test_the_graph_runs_in_order_with_typed_references_and_the_same_history(
    graph: Deployment,
) -> None:
    dep = graph
    status, _ = dep.api(
        "POST", "/machines", {"spec": "graph", "id": MACHINE, "metadata": {"owner": "ana"}}
    )
    assert status == 201
    status, machine = dep.api("POST", f"/machines/{MACHINE}/events", {"event": "LAUNCH"})
    assert status == 202, machine
    assert [inv.task for inv in dep.lambda_starts] == ["a"]
    assert machine["tasks"]["b"]["waiting_for"] == ["a"]
    assert machine["tasks"]["c"]["waiting_for"] == ["b"]

    # a runs (moto's function echoes its event) and reports: b starts, with a's output.
    dep.run_task_runner(dep.lambda_starts[0])
    assert deliver_published(dep) == ["applied"]
    assert [inv.task for inv in dep.lambda_starts] == ["a", "b"]
    b = dep.lambda_starts[1]
    assert b.task_spec.config["args"]["host"] == "db.internal"

    # b's first attempt fails: c is not started.
    failure = {
        "machine_id": MACHINE,
        "epoch": b.epoch,
        "task": "b",
        "attempt": 1,
        "status": "failed",
        "error": "RuntimeError: the first attempt fails",
    }
    assert dep.deliver(dep.task_finished(failure)) == "applied"
    dep.published()
    status, machine = dep.get(MACHINE)
    assert machine["status"] == "failed"
    assert machine["tasks"]["c"]["status"] == "pending" and dep.builds == []

    # POST /retry: b again, then c with a's output in its Terraform variables.
    status, machine = dep.api("POST", f"/machines/{MACHINE}/retry")
    assert status == 202, machine
    assert [(inv.task, inv.attempt) for inv in dep.lambda_starts[2:]] == [("b", 2)]
    dep.run_task_runner(dep.lambda_starts[2])
    assert deliver_published(dep) == ["applied"]
    assert len(dep.builds) == 1
    variables = dep.builds[0].terraform_variables()
    assert variables["host"] == "db.internal"
    assert variables["port"] == 5432
    assert variables["tags"] == ["blue", "green"]
    assert variables["ready"] is True
    assert variables["url"] == f"http://db.internal:5432/{MACHINE}"
    assert variables["owner"] == "ana"

    outputs = {k: {"sensitive": False, "type": "x", "value": v} for k, v in variables.items()}
    assert dep.deliver(dep.builds[0].report("succeeded", outputs)) == "applied"
    assert deliver_published(dep) == ["applied"]  # NEXT
    status, machine = dep.get(MACHINE)
    assert (machine["state"], machine["status"]) == ("RUN", "waiting")

    status, page = dep.api("GET", f"/machines/{MACHINE}/history", query={"limit": "1000"})
    assert status == 200
    assert the_story(page["entries"]) == EXPECTED_STORY

    # A reference to an output a never had fails d at start, with no retry.
    status, machine = dep.api("POST", f"/machines/{MACHINE}/events", {"event": "BREAK"})
    assert status == 202, machine
    d = machine["tasks"]["d"]
    assert (d["status"], d["error_type"], d["attempt"]) == ("failed", "ReferenceError", 1)
    assert "tasks.a.outputs.no_such_output" in d["error"]
    assert [inv.task for inv in dep.lambda_starts].count("d") == 0
