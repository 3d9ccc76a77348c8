"""The local ``terraform`` executor (docs/architecture.md#task-executors).

Per machine and source — not per task, so an ``apply`` and a later ``destroy`` of the
same source share one state — under ``<data>/terraform/<machine>/<source-digest>/``:

- ``terraform.tfstate``: the state (a ``local`` backend forced by an override file);
- ``runs/<epoch>-<task>-<attempt>-<random>/``: a fresh working directory per run,
  holding a copy of the module, ``statewright_override.tf.json`` and
  ``statewright.auto.tfvars.json``; removed when the run ends (or, when the control
  plane was killed first, when the next one starts).

Decisions:
- The binary is ``--terraform-bin``, else ``terraform``, else ``tofu`` on PATH.
- A ``local`` source's ``location`` is absolute or relative to the spec file's folder;
  ``..`` is allowed (specs are written by the platform team and deployed with the
  control plane; no API caller can name a location). A location may be a folder (the
  module, copied without ``.terraform`` and state files) or one ``.tf`` file.
- Every variable is written — the metadata, then the task's ``variables``, later
  winning, then ``stack_id`` (statewright.executors.terraform_run) — whether or not the
  module declares it: Terraform warns about an undeclared value in a tfvars file and goes
  on (checked with 1.0), and the AWS buildspec writes the same file the same way.
- The output is ``{name: value}``; outputs marked sensitive are left out and named in
  the task record's ``redacted_outputs``.
- An ``s3`` source fails the task: local mode has no AWS credentials to fetch it.
- Nothing passes through a shell; values only ever reach Terraform inside a JSON file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from statewright.executors.builtin import LocalSource, S3Source, TerraformConfig
from statewright.executors.terraform_run import (
    OutputsNotUnderstood,
    state_name,
    terraform_outputs,
    terraform_variables,
)
from statewright.local.runs import (
    OUTPUT_LIMIT_BYTES,
    LocalExecutor,
    Run,
    TaskFailed,
    TaskOutput,
    output_too_large,
)
from statewright.model import TaskInvocation
from statewright.ports import Bus

OVERRIDE_FILE = "statewright_override.tf.json"
VARIABLES_FILE = "statewright.auto.tfvars.json"
STATE_FILE = "terraform.tfstate"
# Another run on the same state (an orphan of a crashed server finishing its apply)
# holds the state lock for a moment; waiting beats failing.
LOCK_TIMEOUT = "120s"
# Seconds Terraform gets after SIGINT (it saves its state) before SIGKILL.
KILL_GRACE_SECONDS = 10.0
_COPY_IGNORE = shutil.ignore_patterns(
    ".terraform", "terraform.tfstate", "terraform.tfstate.*", ".terraform.tfstate.lock.info"
)


def find_binary(configured: str | None) -> str:
    """The Terraform binary to run, or TaskFailed saying how to provide one."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise TaskFailed(
                f"terraform binary {configured!r} (from --terraform-bin) is not an executable "
                "file; pass the path of a terraform or tofu binary"
            )
        # Absolute: Terraform runs in the attempt's working directory, not ours.
        return os.path.abspath(found)
    for name in ("terraform", "tofu"):
        found = shutil.which(name)
        if found is not None:
            return os.path.abspath(found)
    raise TaskFailed(
        "no terraform binary: pass --terraform-bin PATH to statewright serve, or put "
        "terraform or tofu on PATH"
    )


class LocalTerraformExecutor(LocalExecutor):
    name = "terraform"
    kill_grace_seconds = KILL_GRACE_SECONDS
    reports_stopped_runs = True

    def __init__(  # noqa: PLR0913 — wiring passed by name, once, by LocalControlPlane
        self,
        *,
        bus: Bus,
        data_dir: Path,
        terraform_bin: str | None = None,
        logs_dir: Path | None = None,
        max_concurrent: int = 4,
        python: str = sys.executable,
    ) -> None:
        super().__init__(bus=bus, logs_dir=logs_dir, max_concurrent=max_concurrent)
        self._root = data_dir.resolve() / "terraform"
        self._terraform_bin = terraform_bin
        self._python = python
        self.remove_stale_runs()

    def remove_stale_runs(self) -> int:
        """Remove the working directories of runs a killed control plane left behind
        (they never reached their cleanup, and their tfvars hold metadata values); the
        number removed. Runs before this executor starts any: the data dir is locked to
        this process, and the old runs' processes end with the process that started them."""
        stale = list(self._root.glob("*/*/runs/*"))
        for work in stale:
            shutil.rmtree(work, ignore_errors=True)
        return len(stale)

    def source_dir(self, machine_id: str, source: S3Source | LocalSource) -> Path:
        """Where the machine's state for this source lives."""
        return self._root / state_name(machine_id, source)

    def module_path(self, invocation: TaskInvocation, source: LocalSource) -> Path:
        location = Path(source.location)
        if not location.is_absolute():
            if invocation.base_dir is None:
                raise TaskFailed(
                    f"terraform source location {source.location!r} is relative but spec "
                    f"{invocation.spec!r} has no folder to resolve it against; use an "
                    "absolute path"
                )
            location = Path(invocation.base_dir) / location
        location = location.resolve()
        if not location.exists():
            raise TaskFailed(
                f"terraform module not found: {location} (source location "
                f"{source.location!r}, relative to the spec's folder)"
            )
        return location

    def execute(self, run: Run) -> Any:
        invocation = run.invocation
        config = TerraformConfig.model_validate(invocation.task_spec.config)
        source = config.source
        if isinstance(source, S3Source):
            raise TaskFailed(
                f"terraform source s3://{source.bucket}/{source.key} cannot be fetched by the "
                "local control plane (it has no AWS access); use a source of type local"
            )
        module = self.module_path(invocation, source)
        binary = find_binary(self._terraform_bin)

        state_dir = self.source_dir(invocation.machine_id, source)
        # Fresh and unique: a run of this attempt from before a crash may still be
        # winding down in its own directory.
        work = (
            state_dir
            / "runs"
            / f"{invocation.epoch}-{invocation.task}-{invocation.attempt}-{uuid.uuid4().hex[:8]}"
        )
        try:
            self._prepare(work, module, state_dir / STATE_FILE)
            (work / VARIABLES_FILE).write_text(
                json.dumps(terraform_variables(invocation, config), indent=2), encoding="utf-8"
            )
            return self._run_terraform(run, binary, work, config.action)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _prepare(self, work: Path, module: Path, state_file: Path) -> None:
        if module.is_dir():
            shutil.copytree(module, work, ignore=_COPY_IGNORE)
        else:
            work.mkdir(parents=True)
            shutil.copy2(module, work / module.name)
        override = {"terraform": {"backend": {"local": {"path": str(state_file)}}}}
        (work / OVERRIDE_FILE).write_text(json.dumps(override, indent=2), encoding="utf-8")

    def _command(self, binary: str, args: list[str]) -> list[str]:
        # Under a supervisor that ends the step if the control plane dies (statewright.
        # local.task_process --exec), so no Terraform run outlives its server.
        return [self._python, "-m", "statewright.local.task_process", "--exec", binary, *args]

    def _run_terraform(self, run: Run, binary: str, work: Path, action: str) -> TaskOutput:
        env = {
            **os.environ,
            "STATEWRIGHT_PARENT_PID": str(os.getpid()),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
        steps: list[tuple[str, list[str]]] = [
            ("init", ["init", "-input=false", "-no-color"]),
            (
                action,
                [
                    action,
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    "-compact-warnings",
                    f"-lock-timeout={LOCK_TIMEOUT}",
                ],
            ),
        ]
        for step, args in steps:
            result = self.run_process(
                run, self._command(binary, args), cwd=work, env=env, capture_stdout=False, what=step
            )
            if result.returncode != 0:
                detail = self.log_tail(run, marker="Error:")
                raise TaskFailed(
                    f"terraform {step} failed (exit code {result.returncode})"
                    + (f": {detail}" if detail else "")
                    + (f" [log: {run.log_path}]" if run.log_path else "")
                )
        result = self.run_process(
            run,
            self._command(binary, ["output", "-json", "-no-color"]),
            cwd=work,
            env=env,
            what="output",
        )
        if result.returncode != 0:
            raise TaskFailed(
                f"terraform output -json failed (exit code {result.returncode}): "
                + self.log_tail(run, marker="Error:")
            )
        if len(result.stdout) > OUTPUT_LIMIT_BYTES:
            raise output_too_large("terraform output -json", len(result.stdout))
        try:
            outputs = terraform_outputs(json.loads(result.stdout))
        except OutputsNotUnderstood as exc:
            raise TaskFailed(str(exc)) from exc
        except ValueError as exc:
            raise TaskFailed(
                f"terraform output -json printed something that is not JSON: {exc}"
            ) from exc
        # Sensitive outputs end here: only their names go on.
        return TaskOutput(outputs.values, outputs.redacted)
