"""The built-in executors' config models: ``lambda`` and ``terraform`` (docs/spec.md#the-format)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator

from statewright.executors.registry import AwsContext, ExecutorPlugin, LocalContext
from statewright.executors.terraform_run import source_digest
from statewright.model import is_reserved_variable
from statewright.spec.rules import TASK_NAME_PATTERN

if TYPE_CHECKING:
    from statewright.ports import Executor

# AWS Lambda's FunctionName pattern: a name, a partial ARN or a full ARN, with an
# optional version or alias qualifier.
_ARN_PREFIX = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?"
)
_FUNCTION_NAME = r"[a-zA-Z0-9-_\.]+"
_QUALIFIER = r"(:(\$LATEST|[a-zA-Z0-9-_]+))?"
LAMBDA_NAME_PATTERN = f"^{_ARN_PREFIX}({_FUNCTION_NAME}){_QUALIFIER}$"
# The same pattern with the function name's group named, to read the name back (the
# JSON Schema keeps the unnamed one: named groups are spelled differently there).
_LAMBDA_NAME = re.compile(f"^{_ARN_PREFIX}(?P<function>{_FUNCTION_NAME}){_QUALIFIER}$")


class LambdaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=LAMBDA_NAME_PATTERN, min_length=1, max_length=170)]
    args: dict[str, Any] | None = None

    @property
    def function_name(self) -> str:
        """The bare function name (what a local ``--functions DIR`` file is called)."""
        match = _LAMBDA_NAME.match(self.name)
        assert match is not None  # the field's pattern already held
        return match.group("function")


class S3Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["s3"]
    # Not S3's 3-character minimum: docs/spec.md's own example names its bucket `b`.
    bucket: Annotated[str, Field(min_length=1, max_length=63)]
    key: Annotated[str, Field(min_length=1, max_length=1024)]

    @field_validator("key")
    @classmethod
    def _stays_inside(cls, key: str) -> str:
        # The build copies the object (or every object under the prefix) into its working
        # directory by name; a `..` segment would name a file outside it.
        if ".." in key.split("/"):
            raise ValueError(
                "an S3 key may not have a `..` segment (the module is copied into the "
                "build's working directory by its key)"
            )
        return key


class LocalSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["local"]
    location: Annotated[str, Field(min_length=1)]


# The one action each of these config keys goes with.
_ACTION_OF = {"fail_on_changes": "plan", "plan": "apply"}


class TerraformConfig(BaseModel):
    """``apply``, ``destroy`` or ``plan`` one source. ``fail_on_changes`` (plan only)
    fails a plan with changes (``DriftDetected``); ``plan`` (apply only) applies that
    plan task's latest successful plan, with no variables of its own (the plan holds
    them). The linter checks that ``plan`` names a plan task of the same source."""

    model_config = ConfigDict(
        extra="forbid",
        # The same pairings for editors (the validators below say them to the linter).
        json_schema_extra={
            "allOf": [
                {
                    "if": {"required": ["fail_on_changes"]},
                    "then": {"properties": {"action": {"const": "plan"}}},
                },
                {
                    "if": {"required": ["plan"]},
                    "then": {
                        "properties": {
                            "action": {"const": "apply"},
                            "variables": {"maxProperties": 0},
                        }
                    },
                },
            ]
        },
    )

    action: Literal["apply", "destroy", "plan"]
    source: Annotated[S3Source | LocalSource, Field(discriminator="type")]
    fail_on_changes: bool | None = None
    plan: Annotated[str | None, Field(pattern=TASK_NAME_PATTERN)] = None
    variables: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("fail_on_changes", "plan")
    @classmethod
    def _only_with_its_action(cls, value: object, info: ValidationInfo) -> object:
        action = info.data.get("action")
        wanted = _ACTION_OF[str(info.field_name)]
        if value is not None and action is not None and action != wanted:
            raise ValueError(
                f"`{info.field_name}` goes with `action: {wanted}` only, not `action: {action}`"
            )
        return value

    @field_validator("variables")
    @classmethod
    def _no_reserved_names(
        cls, variables: dict[str, JsonValue], info: ValidationInfo
    ) -> dict[str, JsonValue]:
        if variables and info.data.get("plan") is not None:
            raise ValueError(
                "an apply of a saved plan takes no `variables`: the plan was made with the "
                "plan task's variables and applies exactly those; set them on the plan task"
            )
        reserved = sorted(name for name in variables if is_reserved_variable(name))
        if reserved:
            raise ValueError(
                f"variable {', '.join(reserved)} is reserved: Statewright sets stack_id (the "
                "machine id) itself and keeps every name starting with statewright_; "
                "rename it"
            )
        return variables


def terraform_state_key(config: Any) -> str | None:
    """A Terraform task's runs work on the machine's state of their source."""
    assert isinstance(config, TerraformConfig)
    return source_digest(config.source)


# Each mode's implementation is imported when it is built, so the linter never loads
# boto3 and a Lambda never loads the subprocess machinery.


def _local_lambda(context: LocalContext) -> Executor:
    from statewright.local.lambda_executor import LocalLambdaExecutor

    return LocalLambdaExecutor(
        bus=context.bus, functions_dir=context.functions_dir, logs_dir=context.logs_dir
    )


def _aws_lambda(context: AwsContext) -> Executor:
    from statewright.aws.lambda_executor import LambdaExecutor

    return LambdaExecutor(context.client("lambda"), context.settings.TASK_RUNNER)


def _local_terraform(context: LocalContext) -> Executor:
    from statewright.local.terraform_executor import LocalTerraformExecutor

    return LocalTerraformExecutor(
        bus=context.bus,
        data_dir=context.data_dir,
        terraform_bin=context.terraform_bin,
        logs_dir=context.logs_dir,
    )


def _aws_terraform(context: AwsContext) -> Executor:
    from statewright.aws.codebuild_executor import CodeBuildExecutor

    return CodeBuildExecutor(
        context.client("codebuild"),
        context.settings.TERRAFORM_PROJECT,
        env_name=context.env_name,
        bus_name=context.bus_name,
        s3=context.client("s3"),
        state_bucket=context.settings.STATE_BUCKET,
        specs_dir=context.specs_dir,
        dynamodb=context.client("dynamodb"),
        table=context.settings.TABLE,
    )


LAMBDA = ExecutorPlugin(
    name="lambda",
    config_model=LambdaConfig,
    default_timeout_seconds=900,
    rule="lambda-config",
    reference_fields=("args",),
    local=_local_lambda,
    aws=_aws_lambda,
)
TERRAFORM = ExecutorPlugin(
    name="terraform",
    config_model=TerraformConfig,
    default_timeout_seconds=3600,
    rule="terraform-config",
    reference_fields=("variables",),
    local=_local_terraform,
    aws=_aws_terraform,
    state_key=terraform_state_key,
)
