"""The ``terraform`` executor in AWS: one CodeBuild build per task attempt, running
infra/buildspec/terraform.yml.

What names the attempt and its source travels as ``STATEWRIGHT_*`` environment
overrides (the names below are the contract with the buildspec and with the dispatcher,
which reads them back from CodeBuild's ``Build State Change`` event). The Terraform
variables, the machine's metadata among them, do not: a build's environment is shown to
whoever may read the build (BatchGetBuilds, the console) and CloudTrail records
StartBuild's request. They travel as ONE JSON object written before the build starts to
an item of the control plane's table (statewright.aws.build_variables), or, too big for
an item, to the state bucket; the buildspec copies it verbatim to
``statewright.auto.tfvars.json``. No value ever reaches a shell. The build id is the run
id; ``cancel`` is ``StopBuild``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import posixpath
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from statewright.aws import build_variables, terraform_locks
from statewright.aws.build_variables import BuildVariables
from statewright.aws.terraform_locks import RunRecords, release_stopped_builds_lock
from statewright.errors import ConfigurationError, StartDeferred
from statewright.executors.terraform_run import state_name, terraform_variables

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_codebuild.type_defs import EnvironmentVariableTypeDef
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from statewright.executors.builtin import LocalSource, TerraformConfig
    from statewright.model import TaskInvocation

log = logging.getLogger(__name__)

# Per-build variables (the buildspec and the dispatcher read these names).
MACHINE_ID = "STATEWRIGHT_MACHINE_ID"
EPOCH = "STATEWRIGHT_EPOCH"
TASK = "STATEWRIGHT_TASK"
ATTEMPT = "STATEWRIGHT_ATTEMPT"
ACTION = "STATEWRIGHT_ACTION"
SOURCE_TYPE = "STATEWRIGHT_SOURCE_TYPE"
SOURCE_BUCKET = "STATEWRIGHT_SOURCE_BUCKET"
SOURCE_KEY = "STATEWRIGHT_SOURCE_KEY"
SOURCE_LOCATION = "STATEWRIGHT_SOURCE_LOCATION"
STATE_KEY = "STATEWRIGHT_STATE_KEY"
OUTPUTS_KEY = "STATEWRIGHT_OUTPUTS_KEY"
# Where the attempt's variables are: an item of the control plane's table (its key), or,
# too big for an item, an object in the state bucket (its key). Exactly one is set.
VARIABLES_ITEM = "STATEWRIGHT_VARIABLES_ITEM"
VARIABLES_KEY = "STATEWRIGHT_VARIABLES_KEY"
# The key of the item of the control plane's table where the build says who it is
# before Terraform may take the state's lock (statewright.aws.terraform_locks).
RUN_ITEM = "STATEWRIGHT_RUN_ITEM"
# A plan: where to keep the saved plan; an apply of a saved plan: the plan to apply.
PLAN_KEY = "STATEWRIGHT_PLAN_KEY"
# "true": a plan with changes fails the task (DriftDetected).
FAIL_ON_CHANGES = "STATEWRIGHT_FAIL_ON_CHANGES"
BUS = "STATEWRIGHT_BUS"
# The attempt's report token (statewright.report_tokens): its report carries it back.
# Readable by whoever may read the build (BatchGetBuilds, CloudTrail): docs/security.md.
REPORT_TOKEN = "STATEWRIGHT_REPORT_TOKEN"  # noqa: S105 — a variable's name, not a secret
# Set on the CodeBuild project by the CDK app (not per build).
STATE_BUCKET = "STATEWRIGHT_STATE_BUCKET"
TABLE = "STATEWRIGHT_TABLE"
SPECS_ASSET = "STATEWRIGHT_SPECS_ASSET"

# CodeBuild's bounds for timeoutInMinutesOverride.
_MIN_TIMEOUT_MINUTES = 5
_MAX_TIMEOUT_MINUTES = 2160


def idempotency_token(start_key: str, parameters: Mapping[str, Any]) -> str:
    """One per attempt AND per set of StartBuild parameters. CodeBuild answers a token
    reused within 5 minutes with other parameters by a parameter-mismatch error, so the
    token covers them: a start repeated with the same parameters gets the build already
    started, and one with other parameters (which the executor avoids: see
    :meth:`CodeBuildExecutor.parameters`) a build of its own, never an error."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{start_key}\n{canonical}".encode()).hexdigest()[:32]


def attempt_name(epoch: int, attempt: int, task: str) -> str:
    """``<epoch>-<attempt>-<task>``: what an attempt's objects beside the state are
    named by."""
    return f"{epoch}-{attempt}-{task}"


def variables_key(stem: str, invocation: TaskInvocation) -> str:
    """``<env>/<machine>/<source-digest>.inputs/<epoch>-<attempt>-<task>.tfvars.json``:
    beside the state, one per attempt."""
    name = attempt_name(invocation.epoch, invocation.attempt, invocation.task)
    return f"{stem}.inputs/{name}.tfvars.json"


def outputs_key(stem: str, name: str) -> str:
    """``<env>/<machine>/<source-digest>.outputs/<epoch>-<attempt>-<task>.json``: where
    a build stores its result when it is too big for its report, which then names it;
    one per attempt (``name``: :func:`attempt_name`), so an object is never taken for a
    later attempt's."""
    return f"{stem}.outputs/{name}.json"


def is_outputs_key(key: str, *, env_name: str, machine_id: str, name: str) -> bool:
    """Whether ``key`` is the :func:`outputs_key` of that machine's attempt ``name``
    (of any source): the dispatcher reads no other object for a report naming one."""
    stem = f"{env_name}/{machine_id}/"
    digest, dot, rest = key.removeprefix(stem).partition(".")
    return (
        key.startswith(stem)
        and digest.isalnum()
        and dot == "."
        and f".{rest}" == outputs_key("", name)
    )


def state_key(stem: str) -> str:
    return f"{stem}.tfstate"


def plan_stem(stem: str, task: str, epoch: int, attempt: int) -> str:
    """``<stem>.plans/<plan-task>/<epoch>-<attempt>``: one saved plan (``.tfplan``) per
    attempt, so a stale plan run that still finishes never
    replaces the plan an apply was approved for."""
    return f"{stem}.plans/{task}/{epoch}-{attempt}"


class CodeBuildExecutor:
    name = "terraform"

    # Each is the build's contract: project, environment, bus, state bucket, specs asset.
    def __init__(  # noqa: PLR0913
        self,
        client: CodeBuildClient,
        project_name: str,
        *,
        env_name: str,
        bus_name: str,
        s3: S3Client | None = None,
        state_bucket: str | None = None,
        specs_dir: Path | None = None,
        dynamodb: DynamoDBClient | None = None,
        table: str | None = None,
    ) -> None:
        self._client = client
        self.project_name = project_name
        self.env_name = env_name
        self.bus_name = bus_name
        self._s3 = s3
        self.state_bucket = state_bucket
        self.specs_dir = specs_dir
        self._variables = BuildVariables(dynamodb, table) if dynamodb and table else None
        self._run_records = RunRecords(dynamodb, table) if dynamodb and table else None

    def _local_location(self, invocation: TaskInvocation, source: LocalSource) -> str:
        """The module's folder relative to the deployed specs asset (the zipped
        ``specs/`` folder): a ``local`` source must live inside it to be shipped."""
        base = invocation.base_dir or (str(self.specs_dir) if self.specs_dir else "")
        root = str(self.specs_dir) if self.specs_dir else base
        absolute = posixpath.normpath(posixpath.join(base, source.location))
        relative = posixpath.relpath(absolute, root) if root else absolute
        if relative == ".." or relative.startswith("../") or posixpath.isabs(relative):
            raise ConfigurationError(
                f"task {invocation.task}: local source {source.location!r} is outside the "
                "specs folder deployed with the control plane; in AWS a local module must "
                "live inside specs/ (or use an s3 source)"
            )
        return relative

    def state_stem(self, machine_id: str, config: TerraformConfig) -> str:
        """``<env>/<machine>/<source-digest>``: the state's key without ``.tfstate``;
        what a run keeps beside the state is named from it."""
        return f"{self.env_name}/{state_name(machine_id, config.source)}"

    def environment(self, invocation: TaskInvocation) -> list[EnvironmentVariableTypeDef]:
        """The build's environment overrides for one attempt."""
        from statewright.executors.builtin import S3Source, TerraformConfig

        config = TerraformConfig.model_validate(invocation.task_spec.config)
        source = config.source
        stem = self.state_stem(invocation.machine_id, config)
        values = {
            MACHINE_ID: invocation.machine_id,
            EPOCH: str(invocation.epoch),
            TASK: invocation.task,
            ATTEMPT: str(invocation.attempt),
            ACTION: config.action,
            SOURCE_TYPE: source.type,
            STATE_KEY: state_key(stem),
            OUTPUTS_KEY: outputs_key(
                stem, attempt_name(invocation.epoch, invocation.attempt, invocation.task)
            ),
            RUN_ITEM: terraform_locks.record_key(state_key(stem)),
            BUS: self.bus_name,
            REPORT_TOKEN: invocation.report_token,
        }
        if self._in_table(self._variables_body(invocation, config)):
            values[VARIABLES_ITEM] = build_variables.item_key(invocation.start_key)
        else:
            values[VARIABLES_KEY] = variables_key(stem, invocation)
        values.update(self._plan_variables(invocation, config, stem))
        if isinstance(source, S3Source):
            values[SOURCE_BUCKET] = source.bucket
            values[SOURCE_KEY] = source.key
        else:
            values[SOURCE_LOCATION] = self._local_location(invocation, source)
        return [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in values.items()]

    @staticmethod
    def _plan_variables(
        invocation: TaskInvocation, config: TerraformConfig, stem: str
    ) -> dict[str, str]:
        """A plan's: where its plan goes. An apply of a saved plan's: the plan of the
        plan task's latest successful run."""
        if config.action == "plan":
            kept = plan_stem(stem, invocation.task, invocation.epoch, invocation.attempt)
            values = {PLAN_KEY: f"{kept}.tfplan"}
            if config.fail_on_changes:
                values[FAIL_ON_CHANGES] = "true"
            return values
        if config.plan is None:
            return {}
        run = invocation.succeeded.get(config.plan)
        if run is None:
            raise ConfigurationError(
                f"task {invocation.task} applies the saved plan of task {config.plan}, which "
                "has no successful plan on this machine: run the plan task first"
            )
        return {PLAN_KEY: f"{plan_stem(stem, config.plan, run.epoch, run.attempt)}.tfplan"}

    def parameters(self, invocation: TaskInvocation) -> dict[str, Any]:
        """StartBuild's parameters for one attempt (the idempotency token aside). They
        depend only on the attempt, never on when it is started: a restart by the
        reconciler minutes later sends the very same request, so CodeBuild hands back
        the build it already started instead of a parameter-mismatch error."""
        minutes = min(
            max(math.ceil(invocation.timeout_seconds / 60), _MIN_TIMEOUT_MINUTES),
            _MAX_TIMEOUT_MINUTES,
        )
        return {
            "projectName": self.project_name,
            "environmentVariablesOverride": self.environment(invocation),
            "timeoutInMinutesOverride": minutes,
        }

    @staticmethod
    def _variables_body(invocation: TaskInvocation, config: TerraformConfig) -> str:
        return json.dumps(terraform_variables(invocation, config), separators=(",", ":"))

    def _in_table(self, body: str) -> bool:
        return self._variables is not None and build_variables.fits(body)

    def write_variables(self, invocation: TaskInvocation) -> None:
        """The attempt's Terraform variables, where its build reads them: an item of the
        control plane's table when they fit one (written once per attempt), else an
        object in the state bucket (written again by every start: the same object)."""
        from statewright.executors.builtin import TerraformConfig

        config = TerraformConfig.model_validate(invocation.task_spec.config)
        body = self._variables_body(invocation, config)
        if (table := self._variables) is not None and build_variables.fits(body):
            self._put_item(table, invocation, body)
            return
        if self._s3 is None or not self.state_bucket:
            raise ConfigurationError(
                "the terraform executor has no state bucket to pass a build its variables "
                "through (check STATEWRIGHT_STATE_BUCKET)"
            )
        stem = self.state_stem(invocation.machine_id, config)
        s3 = self._s3
        try:
            s3.put_object(
                Bucket=self.state_bucket,
                Key=variables_key(stem, invocation),
                Body=body.encode(),
                ContentType="application/json",
            )
        except s3.exceptions.NoSuchBucket as exc:
            raise ConfigurationError(
                f"the state bucket {self.state_bucket} does not exist "
                "(check STATEWRIGHT_STATE_BUCKET)"
            ) from exc
        except (ClientError, BotoCoreError) as exc:
            raise StartDeferred(
                f"could not store the variables of task {invocation.task}: {exc}"
            ) from exc

    @staticmethod
    def _put_item(variables: BuildVariables, invocation: TaskInvocation, body: str) -> None:
        expires_at = (
            int(time.time())
            + invocation.timeout_seconds
            + build_variables.KEPT_AFTER_TIMEOUT_SECONDS
        )
        try:
            variables.put(
                build_variables.item_key(invocation.start_key), body, expires_at=expires_at
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"the table {variables.table} does not exist (check STATEWRIGHT_TABLE)"
                ) from exc
            raise StartDeferred(
                f"could not store the variables of task {invocation.task}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise StartDeferred(
                f"could not store the variables of task {invocation.task}: {exc}"
            ) from exc

    def release_stopped_builds_lock(self, invocation: TaskInvocation) -> None:
        """Before a build starts on a state: release the lock a stopped build left on
        it, when the lock is that build's (statewright.aws.terraform_locks)."""
        from statewright.executors.builtin import TerraformConfig

        if self._s3 is None or not self.state_bucket or self._run_records is None:
            return
        stem = self.state_stem(
            invocation.machine_id, TerraformConfig.model_validate(invocation.task_spec.config)
        )
        check = release_stopped_builds_lock(
            self._s3,
            self._client,
            self._run_records,
            bucket=self.state_bucket,
            state_key=state_key(stem),
        )
        if check.locked:
            # Kept, the build waits for the lock for its lock timeout, then fails saying
            # who holds it.
            level = logging.INFO if check.released else logging.WARNING
            log.log(
                level,
                "task %s of machine %s: %s",
                invocation.task,
                invocation.machine_id,
                check.reason,
            )

    def start(self, invocation: TaskInvocation) -> str:
        parameters = self.parameters(invocation)
        self.write_variables(invocation)
        self.release_stopped_builds_lock(invocation)
        client = self._client
        try:
            response = client.start_build(
                idempotencyToken=idempotency_token(invocation.start_key, parameters),
                **parameters,
            )
        except (
            client.exceptions.ResourceNotFoundException,
            client.exceptions.InvalidInputException,
        ) as exc:
            # No retry cures these.
            error = exc.response.get("Error", {})
            raise ConfigurationError(
                f"could not start a build of {self.project_name} for task {invocation.task}: "
                f"{error.get('Code')}: {error.get('Message', '')} "
                "(check STATEWRIGHT_TERRAFORM_PROJECT)"
            ) from exc
        except (ClientError, BotoCoreError) as exc:
            # Throttling past the SDK's retries, a service or network fault: the task stays
            # pending and the reconciler starts it again (the idempotency token makes
            # that safe if this build did start after all).
            raise StartDeferred(
                f"CodeBuild did not start a build for task {invocation.task}: {exc}"
            ) from exc
        return response["build"]["id"]

    def cancel(self, run_id: str) -> None:
        client = self._client
        # Gone, or already finished: nothing is left to stop.
        with contextlib.suppress(
            client.exceptions.ResourceNotFoundException,
            client.exceptions.InvalidInputException,
        ):
            client.stop_build(id=run_id)
