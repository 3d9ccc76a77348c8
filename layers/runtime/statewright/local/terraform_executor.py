"""The local ``terraform`` executor (docs/architecture.md#task-executors).

Per machine and source — not per task, so an ``apply`` and a later ``destroy`` of the
same source share one state — under ``<data>/terraform/<machine>/<source-digest>/``:

- ``terraform.tfstate``: the state (a ``local`` backend forced by an override file);
- ``runs/<epoch>-<task>-<attempt>-<random>/``: a fresh working directory per run,
  holding a copy of the module, ``statewright_override.tf.json`` and
  ``statewright.auto.tfvars.json``; removed when the run ends (or, when the control
  plane was killed first, when the next one starts);
- ``plans/<task>.tfplan``: the latest successful plan of each ``plan`` task, which an
  ``apply`` with ``plan: <task>`` applies;
- ``stopped-run.json``: the lock a stopped run left, for the next run to release
  (statewright.local.terraform_locks).

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
- Runs on one state never overlap: the engine starts the next only when the previous
  one's end was reported (docs/runtime.md, "One run per state file").
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from statewright.executors.builtin import LocalSource, S3Source, TerraformConfig
from statewright.executors.terraform_plan import PlanNotUnderstood, drift_message, plan_summary
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
    RunAborted,
    TaskFailed,
    TaskOutput,
    output_too_large,
)
from statewright.local.terraform_locks import (
    STATE_FILE,
    note_stopped_run,
    release_stopped_lock,
)
from statewright.model import DRIFT_DETECTED, TIMEOUT, TaskInvocation
from statewright.ports import Bus

OVERRIDE_FILE = "statewright_override.tf.json"
VARIABLES_FILE = "statewright.auto.tfvars.json"
PLANS_DIR = "plans"
PLAN_FILE = "statewright.tfplan"
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
        self.python = python
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
        started = time.time()
        try:
            self._prepare(work, module, state_dir / STATE_FILE)
            release_stopped_lock(state_dir)
            if config.plan is None:
                # An apply of a saved plan takes none: the plan holds its variables.
                (work / VARIABLES_FILE).write_text(
                    json.dumps(terraform_variables(invocation, config), indent=2),
                    encoding="utf-8",
                )
            steps = _TerraformSteps(self, run, binary, work)
            steps.init()
            if config.action == "plan":
                return self._plan(steps, config, state_dir)
            if config.plan is not None:
                steps.apply_plan(self.saved_plan(state_dir, config.plan))
            else:
                steps.apply_or_destroy(config.action)
            return steps.outputs()
        except RunAborted:
            if run.stopped:
                note_stopped_run(state_dir, run.run_id, started)
            raise
        except TaskFailed as exc:
            if exc.error_type == TIMEOUT:  # stopped the same way
                note_stopped_run(state_dir, run.run_id, started)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def plan_path(self, state_dir: Path, task: str) -> Path:
        """Where the latest successful plan of ``task`` on this state is kept."""
        return state_dir / PLANS_DIR / f"{task}.tfplan"

    def saved_plan(self, state_dir: Path, task: str) -> Path:
        path = self.plan_path(state_dir, task)
        if not path.is_file():
            raise TaskFailed(
                f"there is no saved plan of task {task} for this machine and source: an "
                f"apply with plan: {task} applies that plan task's latest successful plan, "
                f"so {task} must have succeeded first"
            )
        if path.with_suffix(_BEFORE_STATE).exists() and _state_lineage(state_dir):
            # Terraform finds a plan stale by the state's lineage and serial, which a plan
            # made before the state existed does not have.
            raise TaskFailed(
                f"the saved plan of task {task} is stale: it was made before this machine's "
                f"state existed, and the state has been written since; run {task} again"
            )
        return path

    def _plan(self, steps: _TerraformSteps, config: TerraformConfig, state_dir: Path) -> Any:
        """``plan -out``, its summary from ``show -json``, ``fail_on_changes``; a plan
        that succeeds becomes the task's saved plan (atomically, so an apply never reads
        half a file)."""
        planned = steps.plan()
        summary = steps.summary(planned)
        if config.fail_on_changes and summary["changes"]:
            raise TaskFailed(drift_message(summary), error_type=DRIFT_DETECTED)
        kept = self.plan_path(state_dir, steps.run.invocation.task)
        kept.parent.mkdir(exist_ok=True)
        before_state = kept.with_suffix(_BEFORE_STATE)
        if _state_lineage(state_dir):
            before_state.unlink(missing_ok=True)
        else:
            before_state.touch()
        incoming = kept.with_suffix(".incoming")
        shutil.copyfile(planned, incoming)
        os.replace(incoming, kept)
        return summary

    def _prepare(self, work: Path, module: Path, state_file: Path) -> None:
        if module.is_dir():
            shutil.copytree(module, work, ignore=_COPY_IGNORE)
        else:
            work.mkdir(parents=True)
            shutil.copy2(module, work / module.name)
        override = {"terraform": {"backend": {"local": {"path": str(state_file)}}}}
        (work / OVERRIDE_FILE).write_text(json.dumps(override, indent=2), encoding="utf-8")


# Beside a saved plan made when the state did not exist yet (see saved_plan).
_BEFORE_STATE = ".before-state"


def _state_lineage(state_dir: Path) -> str | None:
    """The lineage of the machine's state for this source, or None: no state yet."""
    try:
        state = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    lineage = state.get("lineage") if isinstance(state, dict) else None
    return lineage if isinstance(lineage, str) and lineage else None


class _TerraformSteps:
    """The Terraform commands of one run, in its working directory, each as an argv
    list under the supervisor (no shell), its output to the run's log."""

    def __init__(self, executor: LocalTerraformExecutor, run: Run, binary: str, work: Path) -> None:
        self.executor = executor
        self.run = run
        self.binary = binary
        self.work = work
        self.env = {
            **os.environ,
            "STATEWRIGHT_PARENT_PID": str(os.getpid()),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }

    def init(self) -> None:
        self.step("init", ["init", "-input=false", "-no-color"])

    def apply_or_destroy(self, action: str) -> None:
        self.step(action, [action, "-auto-approve", *_CHANGE_FLAGS])

    def apply_plan(self, plan: Path) -> None:
        # Terraform refuses a plan made stale by a change of the state since (its
        # "Saved plan is stale" error becomes the task's error).
        self.step("apply", ["apply", "-auto-approve", *_CHANGE_FLAGS, str(plan)])

    def plan(self) -> Path:
        planned = self.work / PLAN_FILE
        self.step("plan", ["plan", f"-out={planned}", *_CHANGE_FLAGS])
        return planned

    def summary(self, planned: Path) -> dict[str, Any]:
        # show -json prints every planned value, sensitive ones included: it is read
        # into the summary (addresses and actions) and goes nowhere else.
        result = self.captured("show", ["show", "-json", "-no-color", str(planned)])
        try:
            return plan_summary(json.loads(result))
        except PlanNotUnderstood as exc:
            raise TaskFailed(str(exc)) from exc
        except ValueError as exc:
            raise TaskFailed(
                f"terraform show -json printed something that is not JSON: {exc}"
            ) from exc

    def outputs(self) -> TaskOutput:
        stdout = self.captured("output", ["output", "-json", "-no-color"])
        if len(stdout) > OUTPUT_LIMIT_BYTES:
            raise output_too_large("terraform output -json", len(stdout))
        try:
            outputs = terraform_outputs(json.loads(stdout))
        except OutputsNotUnderstood as exc:
            raise TaskFailed(str(exc)) from exc
        except ValueError as exc:
            raise TaskFailed(
                f"terraform output -json printed something that is not JSON: {exc}"
            ) from exc
        # Sensitive outputs end here: only their names go on.
        return TaskOutput(outputs.values, outputs.redacted)

    def step(self, what: str, args: list[str]) -> None:
        result = self.executor.run_process(
            self.run,
            self.command(args),
            cwd=self.work,
            env=self.env,
            capture_stdout=False,
            what=what,
        )
        if result.returncode != 0:
            detail = self.executor.log_tail(self.run, marker="Error:")
            raise TaskFailed(
                f"terraform {what} failed (exit code {result.returncode})"
                + (f": {detail}" if detail else "")
                + (f" [log: {self.run.log_path}]" if self.run.log_path else "")
            )

    def captured(self, what: str, args: list[str]) -> bytes:
        result = self.executor.run_process(
            self.run, self.command(args), cwd=self.work, env=self.env, what=what
        )
        if result.returncode != 0:
            raise TaskFailed(
                f"terraform {' '.join(args[:2])} failed (exit code {result.returncode}): "
                + self.executor.log_tail(self.run, marker="Error:")
            )
        return result.stdout

    def command(self, args: list[str]) -> list[str]:
        # Under a supervisor that ends the step if the control plane dies (statewright.
        # local.task_process --exec), so no Terraform run outlives its server.
        return [
            self.executor.python,
            "-m",
            "statewright.local.task_process",
            "--exec",
            self.binary,
            *args,
        ]


# Flags of every command that changes or reads the state under its lock.
_CHANGE_FLAGS = ("-input=false", "-no-color", "-compact-warnings", f"-lock-timeout={LOCK_TIMEOUT}")
