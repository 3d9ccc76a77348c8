"""A Terraform output marked sensitive, end to end in local mode with the real Terraform:
the API shows the other outputs and the hidden one's name, and the value is nowhere in
the data dir but in Terraform's own state."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from statewright import LocalControlPlane

pytestmark = pytest.mark.terraform

TERRAFORM = str(Path(sys.executable).parent / "terraform")
SECRET = "hunter2-b7f1c0de"
SPEC = textwrap.dedent(
    """\
    version: 1.0
    events: [DESTROY]
    states:
      INIT:
        tasks: [db]
        on: {NEXT: [{action: advance, state: RUN}]}
      RUN: {on: {DESTROY: [{action: advance, state: GONE}]}}
      GONE: {terminal: true}
    tasks:
      db:
        executor: terraform
        config: {action: apply, source: {type: local, location: modules/db}}
    """
)
MODULE = textwrap.dedent(
    f"""\
    variable "stack_id" {{ type = string }}
    output "url" {{ value = "postgres://${{var.stack_id}}.db.example" }}
    output "password" {{
      value     = "{SECRET}"
      sensitive = true
    }}
    """
)


def test_a_sensitive_output_is_only_named(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "modules" / "db").mkdir(parents=True)
    (specs / "modules" / "db" / "main.tf").write_text(MODULE)
    (specs / "db.yml").write_text(SPEC)
    data = tmp_path / "data"
    plane = LocalControlPlane(specs_dirs=[specs], data_dir=data, terraform_bin=TERRAFORM).start()
    try:
        created = plane.request("POST", "/machines", {"spec": "db", "id": "pr-1"})
        assert created.status == 201, created.body
        plane.wait_until(
            "pr-1",
            lambda m: m is not None and m.tasks["db"].status in ("succeeded", "failed"),
            timeout=120,
        )
        plane.wait_until("pr-1", lambda m: m is not None and m.state == "RUN", timeout=30)
        record = plane.request("GET", "/machines/pr-1").body["tasks"]["db"]
        assert record["status"] == "succeeded", record
        assert record["output"] == {"url": "postgres://pr-1.db.example"}
        assert record["redacted_outputs"] == ["password"]
        history = plane.request("GET", "/machines/pr-1/history").body
        assert SECRET not in json.dumps(history)
    finally:
        plane.stop()
    states = [p for p in data.rglob("*") if p.is_file() and ".tfstate" in p.name]
    assert states and all(SECRET in p.read_text() for p in states)  # Terraform's own
    others = [p for p in data.rglob("*") if p.is_file() and p not in states]
    assert others, "the store and the logs are in the data dir"
    for path in others:
        assert SECRET.encode() not in path.read_bytes(), path
