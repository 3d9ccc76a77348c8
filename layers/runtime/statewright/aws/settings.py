"""The control plane's configuration in AWS: exactly the environment variables of
docs/aws.md#configuration, parsed by a pydantic settings model.

Nothing is read at import time. ``load_settings()`` parses the environment at first use
and keeps the result for as long as those variables keep their values, so a Lambda
process parses once while a test that changes the environment gets what it set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from statewright.access import AccessPolicy, AccessRule
from statewright.errors import ConfigurationError

ENV_VARS = (
    "STATEWRIGHT_ENV",
    "STATEWRIGHT_TABLE",
    "STATEWRIGHT_BUS",
    "STATEWRIGHT_TASK_RUNNER",
    "STATEWRIGHT_TERRAFORM_PROJECT",
    "STATEWRIGHT_STATE_BUCKET",
    "STATEWRIGHT_SCHEDULE_GROUP",
    "STATEWRIGHT_SCHEDULER_ROLE_ARN",
    "STATEWRIGHT_DISPATCHER_ARN",
    "STATEWRIGHT_SPECS_DIR",
)
# Optional, set by the CDK app from cdk.json: history_retention_days, access (the
# rules as a JSON list; unset: every authenticated caller may do everything), and
# notices.state_changed (unset: Machine State Changed is published), api.type (unset:
# rest); and the timers' dead-letter queue (unset: a fire Scheduler cannot deliver is
# dropped).
OPTIONAL_ENV_VARS = (
    "STATEWRIGHT_HISTORY_RETENTION_DAYS",
    "STATEWRIGHT_ACCESS",
    "STATEWRIGHT_STATE_CHANGED_NOTICES",
    "STATEWRIGHT_TIMER_DLQ_ARN",
    "STATEWRIGHT_API_TYPE",
)

_DESCRIPTIONS = {
    "STATEWRIGHT_ENV": "the environment name, e.g. dev",
    "STATEWRIGHT_TABLE": "the DynamoDB table name",
    "STATEWRIGHT_BUS": "the EventBridge bus name, e.g. statewright-dev",
    "STATEWRIGHT_TASK_RUNNER": "the task-runner Lambda function name",
    "STATEWRIGHT_TERRAFORM_PROJECT": "the CodeBuild project that runs Terraform",
    "STATEWRIGHT_STATE_BUCKET": "the S3 bucket of Terraform states, outputs and variables",
    "STATEWRIGHT_SCHEDULE_GROUP": "the EventBridge Scheduler group of timers, e.g. statewright-dev",
    "STATEWRIGHT_SCHEDULER_ROLE_ARN": "the ARN of the role EventBridge Scheduler invokes the "
    "dispatcher with",
    "STATEWRIGHT_DISPATCHER_ARN": "the dispatcher function's ARN, the target of timers",
    "STATEWRIGHT_TIMER_DLQ_ARN": "the ARN of the SQS queue of timer fires Scheduler could "
    "not deliver",
    "STATEWRIGHT_HISTORY_RETENTION_DAYS": "a whole number of days, at least 1",
    "STATEWRIGHT_ACCESS": "a JSON list of access rules (docs/security.md)",
    "STATEWRIGHT_STATE_CHANGED_NOTICES": "true or false",
    "STATEWRIGHT_API_TYPE": "rest (API Gateway REST API) or http (HTTP API, payload format 2.0)",
}


class Settings(BaseSettings):
    """The dispatcher's and reconciler's configuration (docs/aws.md#configuration)."""

    model_config = SettingsConfigDict(
        env_prefix="STATEWRIGHT_", case_sensitive=True, frozen=True, extra="ignore"
    )

    ENV: str = Field(min_length=1)
    TABLE: str = Field(min_length=1)
    BUS: str = Field(min_length=1)
    TASK_RUNNER: str = Field(min_length=1)
    TERRAFORM_PROJECT: str = Field(min_length=1)
    # Terraform runs read their variables from here (never from a build's environment).
    STATE_BUCKET: str = Field(min_length=1)
    # Timers (statewright.aws.scheduler_timers): one-time schedules in this group, run
    # with this role, targeting the dispatcher; undeliverable fires go to the queue.
    SCHEDULE_GROUP: str = Field(min_length=1)
    SCHEDULER_ROLE_ARN: str = Field(min_length=1)
    DISPATCHER_ARN: str = Field(min_length=1)
    TIMER_DLQ_ARN: str | None = Field(default=None, min_length=1)
    # None: the ``specs`` folder shipped beside the dispatcher handler (see specs_dir()).
    SPECS_DIR: Path | None = None
    # None: history is kept as long as its machine exists (docs/aws.md, "History").
    HISTORY_RETENTION_DAYS: int | None = Field(default=None, ge=1)
    # None: no access rules, every authenticated caller may do everything.
    ACCESS: tuple[AccessRule, ...] | None = None
    # False: Machine State Changed is not put on the bus (no rule subscribes to it).
    STATE_CHANGED_NOTICES: bool = True
    # Which API Gateway API sends the requests: its events' format (statewright.api).
    API_TYPE: Literal["rest", "http"] = "rest"

    def access_policy(self) -> AccessPolicy | None:
        return AccessPolicy(self.ACCESS) if self.ACCESS is not None else None

    def specs_dir(self, handler_dir: Path | None = None) -> Path:
        """STATEWRIGHT_SPECS_DIR, else ``<handler_dir>/specs`` (how the deployment ships
        them), else the repository's top-level ``specs/`` when the handler runs from a
        checkout (``functions/<name>/`` two levels below it)."""
        if self.SPECS_DIR is not None:
            return self.SPECS_DIR
        base = handler_dir or Path(os.environ.get("LAMBDA_TASK_ROOT", "."))
        beside = base / "specs"
        if beside.is_dir():
            return beside
        checkout = base.parent.parent / "specs"
        return checkout if checkout.is_dir() else beside


class TaskRunnerSettings(BaseSettings):
    """The task runner only reports to the bus: the one variable it needs."""

    model_config = SettingsConfigDict(
        env_prefix="STATEWRIGHT_", case_sensitive=True, frozen=True, extra="ignore"
    )

    BUS: str = Field(min_length=1)


S = TypeVar("S", bound=BaseSettings)


def _parse(model: type[S]) -> S:
    try:
        return model()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            var = "STATEWRIGHT_" + str(error["loc"][0]) if error["loc"] else "STATEWRIGHT_*"
            wanted = _DESCRIPTIONS.get(var, "a value")
            if error["type"] == "missing":
                problems.append(f"{var} is not set (expected {wanted})")
            else:
                # where inside a JSON value (a rule's index and field), when it is one
                inside = "".join(
                    f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"][1:]
                )
                problems.append(f"{var}{inside} is invalid: {error['msg']} (expected {wanted})")
        raise ConfigurationError(
            "Statewright's configuration is incomplete: " + "; ".join(problems)
        ) from exc


# model -> (the variables' values it was parsed from, the parsed settings)
_cache: dict[type[BaseSettings], tuple[tuple[str | None, ...], BaseSettings]] = {}


def _cached(model: type[S]) -> S:
    values = tuple(os.environ.get(name) for name in ENV_VARS + OPTIONAL_ENV_VARS)
    found = _cache.get(model)
    if found is not None and found[0] == values and isinstance(found[1], model):
        return found[1]
    parsed = _parse(model)
    _cache[model] = (values, parsed)
    return parsed


def load_settings() -> Settings:
    """The dispatcher's settings; raises ConfigurationError naming every missing or
    invalid variable."""
    return _cached(Settings)


def load_task_runner_settings() -> TaskRunnerSettings:
    return _cached(TaskRunnerSettings)
