"""The local terraform executor, running the real Terraform (the venv's 1.0.3) on the
example module and on small modules written by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from statewright.executors.builtin import LocalSource
from statewright.executors.terraform_run import source_digest
from statewright.local.terraform_executor import LocalTerraformExecutor

from tests.fakes import RecordingBus, invocation
from tests.integration.local.helpers import EXAMPLES, wait_gone

pytestmark = pytest.mark.terraform

TERRAFORM = str(Path(sys.executable).parent / "terraform")
MODULE = EXAMPLES / "terraform" / "preview-env"


def tf_config(action: str, location: str | Path = MODULE, **variables: object) -> dict:
    return {
        "action": action,
        "source": {"type": "local", "location": str(location)},
        "variables": variables,
    }


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def executor(bus: RecordingBus, data_dir: Path, tmp_path: Path) -> LocalTerraformExecutor:
    ex = LocalTerraformExecutor(
        bus=bus, data_dir=data_dir, terraform_bin=TERRAFORM, logs_dir=tmp_path / "logs"
    )
    yield ex
    ex.shutdown()


def run(executor: LocalTerraformExecutor, bus: RecordingBus, inv) -> dict:
    before = len(bus.events)
    executor.start(inv)
    return bus.wait_for(before + 1, timeout=120)[-1].detail


def test_apply_records_outputs_as_name_and_value(
    executor: LocalTerraformExecutor, bus: RecordingBus, data_dir: Path
) -> None:
    inv = invocation(
        "terraform", tf_config("apply", replicas=2), machine_id="pr-7", metadata={"owner": "ana"}
    )
    detail = run(executor, bus, inv)
    assert detail["status"] == "succeeded", detail
    assert detail["output"] == {
        "name": "preview-pr-7",
        "owner": "ana",
        "replicas": 2,
        "instances": ["preview-pr-7-0", "preview-pr-7-1"],
    }
    # The module's sensitive output is named, never returned.
    assert detail["redacted_outputs"] == ["admin_token"]
    source_dir = (
        data_dir
        / "terraform"
        / "pr-7"
        / source_digest(LocalSource(type="local", location=str(MODULE)))
    )
    state = json.loads((source_dir / "terraform.tfstate").read_text())
    assert state["outputs"]["name"]["value"] == "preview-pr-7"
    # the attempt's working directory is gone; the module folder was never written to
    assert list((source_dir / "runs").iterdir()) == []
    assert sorted(p.name for p in MODULE.iterdir()) == ["main.tf"]


def test_variables_metadata_then_task_variables_then_stack_id(
    executor: LocalTerraformExecutor, bus: RecordingBus, tmp_path: Path
) -> None:
    module = tmp_path / "vars"
    module.mkdir()
    (module / "main.tf").write_text(
        textwrap.dedent(
            """
            variable "stack_id" { type = string }
            variable "owner" { type = string }
            variable "size" { type = number }
            variable "quote" { type = string }
            output "all" { value = "${var.stack_id}/${var.owner}/${var.size}/${var.quote}" }
            """
        )
    )
    inv = invocation(
        "terraform",
        tf_config("apply", module, size=3),
        machine_id="m9",
        # metadata that would break a shell or an HCL file; it only ever reaches JSON. A
        # stack_id in metadata (stored before such keys were refused) never wins.
        metadata={
            "owner": "x",
            "size": 1,
            "quote": "$(touch /tmp/pwned) \"'; `id`",
            "stack_id": "other-machine",
        },
    )
    detail = run(executor, bus, inv)
    assert detail["status"] == "succeeded", detail
    assert detail["output"]["all"] == "m9/x/3/$(touch /tmp/pwned) \"'; `id`"


SECRET = "hunter2-b7f1c0de"


def test_sensitive_outputs_are_left_out_and_named(
    executor: LocalTerraformExecutor, bus: RecordingBus, tmp_path: Path
) -> None:
    module = tmp_path / "secret"
    module.mkdir()
    (module / "main.tf").write_text(
        textwrap.dedent(
            f"""
            output "url" {{ value = "https://db.example" }}
            output "password" {{
              value     = "{SECRET}"
              sensitive = true
            }}
            output "token" {{
              value     = {{ inner = "{SECRET}" }}
              sensitive = true
            }}
            """
        )
    )
    detail = run(executor, bus, invocation("terraform", tf_config("apply", module)))
    assert detail["status"] == "succeeded", detail
    assert detail["output"] == {"url": "https://db.example"}
    assert detail["redacted_outputs"] == ["password", "token"]
    # Not in what was published, nor in the run's log.
    assert SECRET not in json.dumps([e.detail for e in bus.events])
    logs = list((tmp_path / "logs").rglob("*.log"))
    assert logs and all(SECRET not in log.read_text() for log in logs)


def test_undeclared_variables_do_not_fail_the_apply(
    executor: LocalTerraformExecutor, bus: RecordingBus
) -> None:
    inv = invocation("terraform", tf_config("apply", not_declared="x"), metadata={"team": "blue"})
    assert run(executor, bus, inv)["status"] == "succeeded"


def test_destroy_uses_the_state_the_apply_left(
    executor: LocalTerraformExecutor, bus: RecordingBus, data_dir: Path
) -> None:
    applied = run(executor, bus, invocation("terraform", tf_config("apply"), task="infra"))
    assert applied["status"] == "succeeded"
    destroyed = run(
        executor, bus, invocation("terraform", tf_config("destroy"), task="teardown", epoch=2)
    )
    assert destroyed["status"] == "succeeded", destroyed
    assert destroyed["output"] == {}
    states = list((data_dir / "terraform" / "m1").glob("*/terraform.tfstate"))
    assert len(states) == 1, "apply and destroy of one source must share one state"
    assert json.loads(states[0].read_text())["outputs"] == {}


def test_each_machine_and_source_has_its_own_state(
    executor: LocalTerraformExecutor, bus: RecordingBus, data_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.tf").write_text('output "x" { value = 1 }\n')
    run(executor, bus, invocation("terraform", tf_config("apply"), machine_id="a"))
    run(executor, bus, invocation("terraform", tf_config("apply"), machine_id="b"))
    run(executor, bus, invocation("terraform", tf_config("apply", other), machine_id="a", task="x"))
    states = sorted(
        str(p.relative_to(data_dir / "terraform").parent)
        for p in data_dir.glob("terraform/*/*/terraform.tfstate")
    )
    assert len(states) == 3
    assert [s.split("/")[0] for s in states].count("a") == 2


def test_relative_location_resolves_against_the_spec_folder(
    executor: LocalTerraformExecutor, bus: RecordingBus
) -> None:
    inv = invocation(
        "terraform",
        tf_config("apply", "../terraform/preview-env"),
        base_dir=str(EXAMPLES / "specs"),
    )
    assert run(executor, bus, inv)["status"] == "succeeded"


def test_a_missing_module_names_the_folder_looked_at(
    executor: LocalTerraformExecutor, bus: RecordingBus, tmp_path: Path
) -> None:
    inv = invocation("terraform", tf_config("apply", "modules/nope"), base_dir=str(tmp_path))
    detail = run(executor, bus, inv)
    assert detail["status"] == "failed"
    assert str(tmp_path / "modules" / "nope") in detail["error"]


def test_a_terraform_error_is_in_the_task_error(
    executor: LocalTerraformExecutor, bus: RecordingBus, tmp_path: Path
) -> None:
    module = tmp_path / "bad"
    module.mkdir()
    (module / "main.tf").write_text('output "x" { value = var.undefined }\n')
    detail = run(executor, bus, invocation("terraform", tf_config("apply", module)))
    assert detail["status"] == "failed"
    assert detail["error"].startswith("terraform apply failed (exit code 1)")
    assert "Reference to undeclared input variable" in detail["error"]


def test_an_s3_source_fails_locally_with_a_clear_message(
    executor: LocalTerraformExecutor, bus: RecordingBus
) -> None:
    config = {"action": "apply", "source": {"type": "s3", "bucket": "b", "key": "k.tf"}}
    detail = run(executor, bus, invocation("terraform", config))
    assert detail["status"] == "failed"
    assert "s3://b/k.tf" in detail["error"] and "local" in detail["error"]


def test_a_missing_binary_says_how_to_provide_one(bus: RecordingBus, data_dir: Path) -> None:
    executor = LocalTerraformExecutor(
        bus=bus, data_dir=data_dir, terraform_bin="/nonexistent/terraform"
    )
    detail = run(executor, bus, invocation("terraform", tf_config("apply")))
    assert detail["status"] == "failed"
    assert "--terraform-bin" in detail["error"]


def test_no_binary_on_path_says_how_to_provide_one(
    bus: RecordingBus, data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    executor = LocalTerraformExecutor(bus=bus, data_dir=data_dir)
    detail = run(executor, bus, invocation("terraform", tf_config("apply")))
    assert detail["status"] == "failed"
    assert "--terraform-bin" in detail["error"] and "tofu" in detail["error"]


def test_tofu_on_path_is_used_when_terraform_is_not(
    bus: RecordingBus, data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tofu").symlink_to(TERRAFORM)
    monkeypatch.setenv("PATH", str(bin_dir))
    executor = LocalTerraformExecutor(bus=bus, data_dir=data_dir)
    assert run(executor, bus, invocation("terraform", tf_config("apply")))["status"] == "succeeded"


def hanging_terraform(tmp_path: Path, pid_file: Path) -> Path:
    """A stand-in for terraform whose init succeeds and whose other commands ignore
    SIGINT (as a Terraform busy saving its state) and hang, writing their pid first."""
    fake = tmp_path / "fake-terraform"
    fake.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, signal, sys, time
            if sys.argv[1] == "init":
                sys.exit(0)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
            """
        )
    )
    fake.chmod(0o755)
    return fake


def test_timeout_kills_the_process_group(bus: RecordingBus, data_dir: Path, tmp_path: Path) -> None:
    """A binary that hangs (here a stand-in for terraform that ignores SIGINT) is killed."""
    pid_file = tmp_path / "pid"
    fake = hanging_terraform(tmp_path, pid_file)
    executor = LocalTerraformExecutor(bus=bus, data_dir=data_dir, terraform_bin=str(fake))
    executor.kill_grace_seconds = 0.5
    started = time.monotonic()
    detail = run(executor, bus, invocation("terraform", tf_config("apply"), timeout_seconds=2))
    assert detail["status"] == "failed"
    assert detail["error"] == "timed out after 2s"
    assert time.monotonic() - started < 10
    assert wait_gone(int(pid_file.read_text()))


def test_a_terraform_step_ends_when_its_control_plane_dies(tmp_path: Path) -> None:
    """A SIGKILLed server leaves no Terraform run behind: its supervisor interrupts it."""
    pid_file = tmp_path / "pid"
    command = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    spawner = textwrap.dedent(
        f"""
        import os, subprocess, sys
        subprocess.Popen(
            [sys.executable, "-m", "statewright.local.task_process", "--exec",
             sys.executable, "-c", {command!r}],
            start_new_session=True,
            env={{**os.environ, "STATEWRIGHT_PARENT_PID": str(os.getpid())}},
        )
        """
    )
    deadline = time.monotonic() + 10
    subprocess.run([sys.executable, "-c", spawner], check=True, timeout=30)
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert wait_gone(int(pid_file.read_text()), timeout=10), "the step outlived its server"


def test_a_stopped_run_reports_its_end_once_its_processes_are_gone(
    bus: RecordingBus, data_dir: Path, tmp_path: Path
) -> None:
    """cancel (cancel: force, a timeout) sends SIGINT, then SIGKILL after the grace, and
    returns at once; the run's end is reported when the process group has exited, since
    the next run on the state waits for exactly that."""
    pid_file = tmp_path / "pid"
    fake = hanging_terraform(tmp_path, pid_file)
    executor = LocalTerraformExecutor(bus=bus, data_dir=data_dir, terraform_bin=str(fake))
    executor.kill_grace_seconds = 1.0
    run_id = executor.start(invocation("terraform", tf_config("apply")))
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    asked = time.monotonic()
    executor.cancel(run_id)
    assert time.monotonic() - asked < 0.5  # the grace is not the caller's to wait out
    assert bus.events == []  # still winding down: not over yet
    detail = bus.wait_for(1, timeout=20)[0].detail
    assert wait_gone(int(pid_file.read_text()), timeout=1.0)
    assert (detail["status"], detail["error"]) == (
        "failed",
        "the run was stopped (cancel: force, or its timeout)",
    )
    executor.shutdown()
