"""Safe Terraform end to end in local mode, with the real Terraform (docs/runtime.md, "One
run per state file"; docs/local.md, "Stopped runs and locks"):

- DESTROY sent while a slow apply runs: the apply finishes, then the destroy runs on the
  same state and leaves nothing behind; with `cancel: force` the apply is stopped and
  the destroy still succeeds, with no manual unlock;
- two machines' applies run side by side, each on its own state file;
- plan -> APPROVE -> apply applies the saved plan; a plan made stale by another apply
  fails with Terraform's message; `fail_on_changes` routes a drifted machine to its
  `FAILED` target (the example spec examples/specs/guarded.yml, as `make run` serves it).

The slow apply reads a `terraform_remote_state` (built into Terraform, no provider to
download) from a local HTTP "gate" the test holds shut: the apply is in progress, with
its state locked, for as long as the test wants."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from statewright import LocalControlPlane
from statewright.executors.builtin import LocalSource
from statewright.executors.terraform_run import source_digest
from statewright.local.terraform_locks import LOCK_INFO_FILE

from tests.integration.local.helpers import EXAMPLES

pytestmark = pytest.mark.terraform

TERRAFORM = str(Path(sys.executable).parent / "terraform")
GATED_MODULE = textwrap.dedent(
    """\
    variable "stack_id" { type = string }
    variable "gate" { type = string }
    data "terraform_remote_state" "gate" {
      backend = "http"
      config  = { address = var.gate }
    }
    output "name" { value = "env-${var.stack_id}" }
    output "gate" { value = data.terraform_remote_state.gate.outputs.ready }
    """
)
LIFECYCLE = textwrap.dedent(
    """\
    version: 1.0
    events: [DESTROY]
    states:
      INIT:
        tasks: [env]
        on: {NEXT: [{action: advance, state: RUN}], DESTROY: [{action: advance, state: TEARDOWN}]}
      RUN: {on: {DESTROY: [{action: advance, state: TEARDOWN}]}}
      TEARDOWN: {tasks: [env-destroy], on: {NEXT: [{action: advance, state: DESTROYED}]}}
      DESTROYED: {on: {DESTROY: [{action: advance, state: GONE}]}}
      GONE: {terminal: true}
    tasks:
      env:
        executor: terraform
        cancel: CANCEL
        config: {action: apply, source: {type: local, location: modules/env}}
      env-destroy:
        executor: terraform
        config: {action: destroy, source: {type: local, location: modules/env}}
    """
)
GATE_STATE = json.dumps(
    {
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": 1,
        "lineage": "gate",
        "outputs": {"ready": {"value": "open", "type": "string"}},
        "resources": [],
    }
).encode()


class Gate:
    """An HTTP state backend that holds every read until it is opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.readers = 0
        self.read = threading.Condition()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with gate.read:
                    gate.readers += 1
                    gate.read.notify_all()
                gate.opened.wait(60)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(GATE_STATE)))
                self.end_headers()
                self.wfile.write(GATE_STATE)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/state"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for_readers(self, count: int, timeout: float = 60) -> None:
        with self.read:
            assert self.read.wait_for(lambda: self.readers >= count, timeout), (
                f"{self.readers} of {count} Terraform runs reached the gate"
            )

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.close()


def plane_with(tmp_path: Path, name: str, spec: str, module: str) -> LocalControlPlane:
    specs = tmp_path / "specs"
    (specs / "modules" / "env").mkdir(parents=True)
    (specs / "modules" / "env" / "main.tf").write_text(module)
    (specs / f"{name}.yml").write_text(spec)
    return LocalControlPlane(
        specs_dirs=[specs], data_dir=tmp_path / "data", terraform_bin=TERRAFORM
    ).start()


def state_dir(tmp_path: Path, machine_id: str) -> Path:
    source = LocalSource(type="local", location="modules/env")
    return tmp_path / "data" / "terraform" / machine_id / source_digest(source)


def state_list(state: Path) -> list[str]:
    result = subprocess.run(
        [TERRAFORM, "state", "list", f"-state={state / 'terraform.tfstate'}"],
        cwd=state,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.split()


def history(plane: LocalControlPlane, machine_id: str) -> list[dict[str, Any]]:
    answer = plane.request("GET", f"/machines/{machine_id}/history?limit=1000")
    assert answer.status == 200, answer.body
    entries: list[dict[str, Any]] = answer.body["entries"]
    return entries


def in_state(plane: LocalControlPlane, machine_id: str, state: str, timeout: float = 120) -> Any:
    return plane.wait_until(
        machine_id, lambda m: m is not None and m.state == state and m.status != "running", timeout
    )


def log_of(tmp_path: Path, machine_id: str, name: str) -> str:
    return (tmp_path / "data" / "logs" / machine_id / f"{name}.log").read_text()


def destroy_during_apply(tmp_path: Path, gate: Gate, cancel: str) -> tuple[Any, list[dict]]:
    """Launch, send DESTROY while the apply is held at the gate, check that the destroy
    waits for the apply; return (the plane, the history once the machine is DESTROYED)."""
    plane = plane_with(tmp_path, "env", LIFECYCLE.replace("CANCEL", cancel), GATED_MODULE)
    created = plane.request(
        "POST", "/machines", {"spec": "env", "id": "pr-1", "metadata": {"gate": gate.url}}
    )
    assert created.status == 201, created.body
    gate.wait_for_readers(1)  # the apply is running, its state locked
    sent = plane.request("POST", "/machines/pr-1/events", {"event": "DESTROY"})
    assert sent.status == 202, sent.body
    destroy = sent.body["tasks"]["env-destroy"]
    assert (sent.body["state"], destroy["status"], destroy["waiting_for"]) == (
        "TEARDOWN",
        "pending",
        ["env"],
    )
    assert sent.body["tasks"]["env"]["status"] == "cancelled"
    return plane, sent.body


def test_destroy_during_a_slow_apply_waits_for_it_then_leaves_nothing(
    tmp_path: Path, gate: Gate
) -> None:
    plane, _ = destroy_during_apply(tmp_path, gate, "graceful")
    try:
        time.sleep(1.0)
        machine = plane.request("GET", "/machines/pr-1").body
        assert machine["tasks"]["env-destroy"]["status"] == "pending"  # still waiting
        gate.opened.set()  # the apply goes on to its end
        in_state(plane, "pr-1", "DESTROYED")
        entries = history(plane, "pr-1")
        ended = next(e for e in entries if e["kind"] == "run_finished")
        assert (ended["task"], ended["status"], ended["state"]) == ("env", "succeeded", "INIT")
        destroy_started = next(
            e for e in entries if e["kind"] == "task_started" and e["task"] == "env-destroy"
        )
        assert destroy_started["seq"] > ended["seq"]
        assert "Apply complete!" in log_of(tmp_path, "pr-1", "1-env-1")
        assert (
            plane.request("GET", "/machines/pr-1").body["tasks"]["env-destroy"]["status"]
            == "succeeded"
        )
        assert state_list(state_dir(tmp_path, "pr-1")) == []
        plane.request("POST", "/machines/pr-1/events", {"event": "DESTROY"})
        assert plane.request("GET", "/machines/pr-1").status == 404
    finally:
        plane.stop()


def test_cancel_force_stops_the_apply_and_the_destroy_needs_no_unlock(
    tmp_path: Path, gate: Gate
) -> None:
    plane, _ = destroy_during_apply(tmp_path, gate, "force")
    try:
        # SIGINT; Terraform waits for its read, so SIGKILL after 10 s ends it.
        in_state(plane, "pr-1", "DESTROYED", timeout=120)
        entries = history(plane, "pr-1")
        ended = next(e for e in entries if e["kind"] == "run_finished")
        assert (ended["task"], ended["status"]) == ("env", "failed")
        assert "stopped" in ended["error"]
        assert "Apply complete!" not in log_of(tmp_path, "pr-1", "1-env-1")
        destroy = plane.request("GET", "/machines/pr-1").body["tasks"]["env-destroy"]
        assert destroy["status"] == "succeeded", destroy
        state = state_dir(tmp_path, "pr-1")
        assert state_list(state) == []
        # The killed apply's lock was released by the destroy, not by hand.
        assert not (state / LOCK_INFO_FILE).exists()
    finally:
        plane.stop()


def test_two_machines_apply_side_by_side_each_on_its_own_state(tmp_path: Path, gate: Gate) -> None:
    plane = plane_with(tmp_path, "env", LIFECYCLE.replace("CANCEL", "graceful"), GATED_MODULE)
    try:
        for machine_id in ("pr-1", "pr-2"):
            body = {"spec": "env", "id": machine_id, "metadata": {"gate": gate.url}}
            assert plane.request("POST", "/machines", body).status == 201
        gate.wait_for_readers(2)  # both applies run at once: one run per state, not per spec
        gate.opened.set()
        for machine_id in ("pr-1", "pr-2"):
            machine = in_state(plane, machine_id, "RUN")
            assert machine.tasks["env"].output == {"name": f"env-{machine_id}", "gate": "open"}
            state = json.loads((state_dir(tmp_path, machine_id) / "terraform.tfstate").read_text())
            assert state["outputs"]["name"]["value"] == f"env-{machine_id}"
    finally:
        plane.stop()


def guarded_plane(tmp_path: Path) -> LocalControlPlane:
    """The example spec examples/specs/guarded.yml, as `make run` serves it."""
    return LocalControlPlane(
        specs_dirs=[EXAMPLES / "specs"], data_dir=tmp_path / "data", terraform_bin=TERRAFORM
    ).start()


def guarded_state(tmp_path: Path, machine_id: str) -> Path:
    source = LocalSource(type="local", location="../terraform/preview-env")
    return tmp_path / "data" / "terraform" / machine_id / source_digest(source)


def apply_by_hand(tmp_path: Path, machine_id: str, owner: str) -> None:
    """Someone applies the example module to the machine's state outside Statewright."""
    work = tmp_path / f"by-hand-{owner}"
    shutil.copytree(EXAMPLES / "terraform" / "preview-env", work)
    backend = {"local": {"path": str(guarded_state(tmp_path, machine_id) / "terraform.tfstate")}}
    (work / "override.tf.json").write_text(json.dumps({"terraform": {"backend": backend}}))
    variables = {"stack_id": machine_id, "owner": owner, "replicas": 2}
    (work / "terraform.tfvars.json").write_text(json.dumps(variables))
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run(
            [TERRAFORM, *args, "-no-color"], cwd=work, check=True, timeout=120, capture_output=True
        )


def launch(plane: LocalControlPlane, machine_id: str, owner: str) -> Any:
    body = {"spec": "guarded", "event": "LAUNCH", "metadata": {"owner": owner}}
    sent = plane.request("POST", f"/machines/{machine_id}/events", body)
    assert sent.status == 202, sent.body
    return in_state(plane, machine_id, "AWAIT_APPROVAL")


def send(plane: LocalControlPlane, machine_id: str, event: str, **metadata: Any) -> None:
    body = {"event": event, "metadata": metadata}
    sent = plane.request("POST", f"/machines/{machine_id}/events", body)
    assert sent.status == 202, sent.body


def test_approve_applies_exactly_the_saved_plan_and_drift_is_caught(tmp_path: Path) -> None:
    plane = guarded_plane(tmp_path)
    try:
        machine = launch(plane, "g-1", owner="ana")
        # The module has no resources: its outputs are what changes.
        assert machine.tasks["plan"].output == {
            "changes": True,
            "add": 0,
            "change": 0,
            "destroy": 0,
            "resources": [],
        }
        assert (guarded_state(tmp_path, "g-1") / "plans" / "plan.tfplan").is_file()
        # The approval changes the metadata; the apply applies the plan as it was made.
        send(plane, "g-1", "APPROVE", owner="bob")
        machine = in_state(plane, "g-1", "RUN")
        assert machine.tasks["apply"].output["owner"] == "ana"

        # A drift check of an unchanged environment goes back to RUN.
        send(plane, "g-1", "DRIFT_CHECK", owner="ana")
        machine = in_state(plane, "g-1", "RUN")
        assert machine.tasks["drift-check"].output["changes"] is False
        # Someone changes the environment by hand: the next check routes to DRIFTED.
        apply_by_hand(tmp_path, "g-1", owner="mallory")
        send(plane, "g-1", "DRIFT_CHECK")
        machine = in_state(plane, "g-1", "DRIFTED")
        check = machine.tasks["drift-check"]
        assert (check.status, check.error_type) == ("failed", "DriftDetected")
        assert "the plan has changes" in (check.error or "")
    finally:
        plane.stop()


def test_a_plan_made_stale_by_another_apply_fails_with_terraforms_reason(tmp_path: Path) -> None:
    plane = guarded_plane(tmp_path)
    try:
        # Before the state exists, a plan has no lineage Terraform could compare: the
        # executor tells such a plan's staleness itself.
        launch(plane, "g-2", owner="ana")
        apply_by_hand(tmp_path, "g-2", owner="eve")
        send(plane, "g-2", "APPROVE")
        machine = failed(plane, "g-2")
        assert "it was made before this machine's state existed" in (
            machine.tasks["apply"].error or ""
        )
        # With a state, Terraform itself refuses a plan made stale by another apply.
        send(plane, "g-2", "REPLAN")
        in_state(plane, "g-2", "AWAIT_APPROVAL")
        apply_by_hand(tmp_path, "g-2", owner="mallory")
        send(plane, "g-2", "APPROVE")
        apply = failed(plane, "g-2").tasks["apply"]
        assert "Saved plan is stale" in (apply.error or ""), apply.error
        state = json.loads((guarded_state(tmp_path, "g-2") / "terraform.tfstate").read_text())
        assert state["outputs"]["owner"]["value"] == "mallory"  # the stale plan changed nothing
    finally:
        plane.stop()


def failed(plane: LocalControlPlane, machine_id: str) -> Any:
    return plane.wait_until(
        machine_id, lambda m: m is not None and m.status == "failed", timeout=120
    )
