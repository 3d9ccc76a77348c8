"""Metadata and Terraform variables written to run a shell (``$(...)``, backticks, ``;``,
newlines, pipes, quotes) or to make Terraform evaluate something (``${file(...)}``,
``%{ if }``) reach the task as data: the Lambda function and Terraform hand every byte
back unchanged, and the marker file the payloads would create never appears."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.local.server import Server, gone, in_state
from tests.reliability.figures import record
from tests.reliability.hostile.conftest import payloads

pytestmark = pytest.mark.terraform


def test_injection_payloads_reach_lambda_and_terraform_as_data(
    server: Server, marker: Path
) -> None:
    p = payloads(marker)
    metadata = {f"m_{name}": value for name, value in p.items()}
    # A key no module declares, itself a payload: Terraform warns about an undeclared
    # value in a tfvars file and goes on.
    metadata[f"k; touch {marker}"] = "x"
    mid = "inject-" + uuid.uuid4().hex[:8]
    answer = server.request(
        "POST", f"/machines/{mid}/events", {"event": "LAUNCH", "spec": "echo", "metadata": metadata}
    )
    assert answer.status == 202, answer
    machine = server.wait_for(mid, in_state("IDLE"), 120)
    assert machine is not None
    tasks = machine["tasks"]
    assert tasks["echo"]["status"] == "succeeded", tasks["echo"]
    assert tasks["infrastructure"]["status"] == "succeeded", tasks["infrastructure"]

    echoed = tasks["echo"]["output"]
    assert echoed["metadata"] == metadata
    assert echoed["args"] == {"arg": p["subst"]}

    outputs = tasks["infrastructure"]["output"]
    assert outputs["stack_id"] == mid
    for name, value in p.items():
        assert outputs[f"m_{name}"] == value, name
    assert outputs["t_subst"] == p["subst"]
    assert outputs["t_template"] == p["template"]  # not evaluated: no file was read
    assert outputs["t_list"] == [p["backtick"], p["newline"]]

    assert server.request("POST", f"/machines/{mid}/events", {"event": "DESTROY"}).status == 202
    server.wait_for(mid, gone, 60)
    assert not marker.exists(), "a payload ran in a shell"
    record("hostile", inputs=len(metadata) + 4, injection_payloads=len(p), shell_runs=0)
