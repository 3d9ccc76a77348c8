"""One environment's settings, read from ``cdk.json``'s ``statewright:environments`` context.

Validated up front with pydantic so a typo in ``cdk.json`` fails the synth with a message
naming the environment, the setting and what is accepted — never half a template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from statewright.access import AccessRule

CONTEXT_KEY = "statewright:environments"
ENV_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,19}$"
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
    2557, 2922, 3288, 3653,
)  # fmt: skip
# The console's broadest grants; a Terraform runner holding one defeats least privilege.
FORBIDDEN_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
# The control plane's own functions are statewright-<env>-<name>.
CONTROL_PLANE_FUNCTIONS = ("dispatcher", "taskrunner", "reconciler")


def function_name(env_name: str, name: str) -> str:
    return f"statewright-{env_name}-{name}"


class SettingsError(Exception):
    """cdk.json does not describe the requested environment correctly."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The first release of each distribution whose S3 backend has use_lockfile (the lock
# object beside the state that Statewright's builds use).
LOCKFILE_SINCE = {"terraform": (1, 10, 0), "opentofu": (1, 10, 0)}
DISTRIBUTIONS = tuple(LOCKFILE_SINCE)


class TerraformSettings(_Strict):
    """The Terraform (or OpenTofu) binary the CodeBuild project downloads and verifies."""

    # Which CLI: HashiCorp's terraform, or OpenTofu's tofu.
    distribution: str = "terraform"
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    # SHA-256 of the release zip for linux_amd64: terraform_<version>_linux_amd64.zip
    # (releases.hashicorp.com) or tofu_<version>_linux_amd64.zip (OpenTofu's GitHub
    # releases).
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    compute_type: Literal["SMALL", "MEDIUM", "LARGE"] = "SMALL"

    @field_validator("distribution")
    @classmethod
    def _known_distribution(cls, distribution: str) -> str:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution {distribution!r} is not accepted: use one of "
                f"{', '.join(DISTRIBUTIONS)} (OpenTofu's CLI is tofu; its S3 backend "
                "keeps the same state and lock objects)"
            )
        return distribution

    @model_validator(mode="after")
    def _has_lockfile(self) -> TerraformSettings:
        since = LOCKFILE_SINCE[self.distribution]
        if tuple(int(part) for part in self.version.split(".")) < since:
            oldest = ".".join(str(part) for part in since)
            raise ValueError(
                f"{self.distribution} {self.version} is too old: accepted are {oldest} and "
                "later, whose S3 backend has use_lockfile (the lock every build takes)"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_project_timeout(cls, data: Any) -> Any:
        # Every build is started with its task's own timeout (timeoutInMinutesOverride),
        # so a project-wide timeout would never apply: refuse it rather than ignore it.
        if isinstance(data, Mapping) and "timeout_minutes" in data:
            raise ValueError(
                "timeout_minutes is not a setting: each Terraform build runs for its "
                "task's timeout_seconds (default 3600) plus its retry backoff; set "
                "timeout_seconds on the task in the spec instead"
            )
        return data


class PolicyStatement(_Strict):
    """An IAM statement the Terraform runner may use, in IAM's own JSON spelling."""

    Sid: Annotated[str, Field(pattern=r"^[A-Za-z0-9]+$")] | None = None
    Effect: Literal["Allow", "Deny"] = "Allow"
    Action: Annotated[list[str], Field(min_length=1)]
    Resource: Annotated[list[str], Field(min_length=1)]
    Condition: dict[str, dict[str, Any]] | None = None

    @field_validator("Action")
    @classmethod
    def _no_star_action(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if action == "*" or not re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9*]+", action):
                raise ValueError(
                    f"action {action!r} is not accepted: name one service's actions, "
                    "e.g. 's3:GetObject' or 's3:Get*' ('*' alone would grant everything)"
                )
        return actions


class ApiThrottling(_Strict):
    rate_limit: Annotated[float, Field(gt=0, le=10000)]
    burst_limit: Annotated[int, Field(gt=0, le=5000)]


API_TYPES = {
    "rest": "API Gateway REST API (infra/api.py): gateway refusals in the API's error shape",
    "http": "API Gateway HTTP API (infra/http_api.py): a lower price per request; "
    "API Gateway's own refusals keep its own body (docs/deploy.md)",
}


class ApiSettings(_Strict):
    """Which API Gateway API fronts the control plane (docs/deploy.md, "The HTTP API
    option"); both are IAM (SigV4) authorized and answer the same routes."""

    type: str = "rest"

    @field_validator("type")
    @classmethod
    def _known_type(cls, api_type: str) -> str:
        if api_type not in API_TYPES:
            accepted = "; ".join(f"{name}: {what}" for name, what in API_TYPES.items())
            raise ValueError(f"{api_type!r} is not an API type; accepted: {accepted}")
        return api_type


# An S3 bucket name as S3 accepts it (3-63 characters, lower case, digits, '.', '-').
BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class BusSenders(_Strict):
    """Who may put events on the control plane's bus besides the control plane itself
    (infra/bus.py): the event sources it takes, and other accounts allowed to send."""

    # EventBridge's own wildcard (*) allowed; the control plane's "statewright" is not
    # one to list (the bus policy reserves it to the control plane's roles).
    sources: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.*_/-]{1,256}$")]]
    accounts: list[Annotated[str, Field(pattern=r"^\d{12}$")]] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _not_internal(cls, sources: list[str]) -> list[str]:
        if "statewright" in sources:
            raise ValueError(
                "'statewright' is the control plane's own source and only its roles may "
                "send it; list the sources of your own producers"
            )
        return sources


NOTICES = {
    "state_changed": "Machine State Changed, put on the bus for every state a machine enters",
}


class NoticeSettings(_Strict):
    """Which notices the control plane puts on its bus for other systems to subscribe to
    (docs/aws.md, "EventBridge"). Each one put is an EventBridge event billed; turn one off
    when no rule of yours subscribes to it."""

    state_changed: StrictBool = True

    @model_validator(mode="before")
    @classmethod
    def _known_notices(cls, data: Any) -> Any:
        accepted = "; ".join(f"{name} (true or false): {what}" for name, what in NOTICES.items())
        if not isinstance(data, Mapping):
            raise ValueError(f"notices must be an object of notice names; accepted: {accepted}")
        unknown = sorted(set(data) - set(NOTICES))
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} is not a notice; accepted: {accepted} "
                "(Machine Deleted is always put)"
            )
        return data


class EnvironmentSettings(_Strict):
    """What differs between two deployments of the control plane."""

    # Explicit account/region pin the stack; left out, the stack is environment-agnostic
    # and deploys wherever the CLI's credentials point.
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    # Task runner may invoke only functions whose name starts with this.
    task_function_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{3,60}$")]
    terraform: TerraformSettings
    terraform_managed_policy_arns: list[
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::(aws|\d{12}):policy/[\w+=,.@/-]+$")]
    ] = Field(default_factory=list)
    terraform_policy_statements: list[PolicyStatement] = Field(default_factory=list)
    log_retention_days: int
    api_throttling: ApiThrottling
    removal_policy: Literal["destroy", "retain"]
    history_retention_days: Annotated[int, Field(ge=1, le=3650)]
    reconcile_every_minutes: Annotated[int, Field(ge=1, le=60)] = 5
    alarm_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    # Buckets holding Terraform modules that specs name as `s3` sources: the Terraform
    # runner may read them (and nothing else of them).
    terraform_module_buckets: list[Annotated[str, Field(pattern=BUCKET_NAME)]] = Field(
        default_factory=list
    )
    # API Gateway's per-method metrics (7 metrics for each of ~19 methods, billed as
    # custom metrics); the API-wide ones (count, 4xx, 5xx, latency) are always there.
    api_detailed_metrics: bool = False
    # API Gateway execution logs. Anything but "off" needs the account's API Gateway
    # CloudWatch role (see api_gateway_account_role).
    api_execution_logs: Literal["off", "errors", "info"] = "off"
    # Create AWS::ApiGateway::Account and its CloudWatch role. There is one per account
    # and region: set it in at most one environment of an account and region.
    api_gateway_account_role: bool = False
    # Which API Gateway API: rest (default) or http.
    api: ApiSettings = Field(default_factory=ApiSettings)

    # Who may do what to which machine through the API (docs/security.md, "Access
    # rules"); left out, every caller IAM lets in may do everything.
    access: list[AccessRule] | None = None
    # Who may put events on the bus; left out, any principal of the account whose IAM
    # policy allows PutEvents, with any source but the control plane's own.
    bus_senders: BusSenders | None = None
    # Notices put on the bus for subscribers; left out, all of them.
    notices: NoticeSettings = Field(default_factory=NoticeSettings)

    @field_validator("log_retention_days")
    @classmethod
    def _known_retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            accepted = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
            raise ValueError(f"{days} is not a CloudWatch Logs retention; accepted: {accepted}")
        return days

    @field_validator("terraform_managed_policy_arns")
    @classmethod
    def _no_admin_policies(cls, arns: list[str]) -> list[str]:
        for arn in arns:
            if arn.rsplit("/", 1)[-1] in FORBIDDEN_MANAGED_POLICIES:
                raise ValueError(
                    f"{arn} grants far more than Terraform needs; list the services your "
                    "modules manage in terraform_policy_statements instead"
                )
        return arns

    @model_validator(mode="after")
    def _rest_only_settings(self) -> EnvironmentSettings:
        # Execution logs and the account's CloudWatch role that writes them exist for
        # REST APIs only: refused rather than silently doing nothing.
        if self.api.type == "http":
            if self.api_execution_logs != "off":
                raise ValueError(
                    "api_execution_logs must be 'off' with api.type 'http': HTTP APIs have "
                    "no execution logs (every request is in the JSON access log); use "
                    "api.type 'rest' for them"
                )
            if self.api_gateway_account_role:
                raise ValueError(
                    "api_gateway_account_role is for a REST API's execution logs; with "
                    "api.type 'http' leave it false (set it in a REST environment of the "
                    "account if one needs it)"
                )
        return self

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"


def load_settings(environments: Any, env_name: str) -> EnvironmentSettings:
    """The named environment from the ``statewright:environments`` context value."""
    if not re.fullmatch(ENV_NAME_PATTERN, env_name):
        raise SettingsError(
            f"environment name {env_name!r} is not accepted: use lower-case letters, digits "
            "and '-', starting with a letter, at most 20 characters (it names the stack)"
        )
    if not isinstance(environments, Mapping) or not environments:
        raise SettingsError(
            f"cdk.json has no {CONTEXT_KEY!r} context: add an object with one entry per "
            "environment (see docs/deploy.md)"
        )
    if env_name not in environments:
        known = ", ".join(sorted(environments))
        raise SettingsError(
            f"environment {env_name!r} is not declared in cdk.json ({CONTEXT_KEY}); "
            f"declared: {known}"
        )
    try:
        settings = EnvironmentSettings.model_validate(environments[env_name])
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"cdk.json environment {env_name!r} is invalid — {problems}") from exc
    own = [function_name(env_name, name) for name in CONTROL_PLANE_FUNCTIONS]
    clashing = [name for name in own if name.startswith(settings.task_function_prefix)]
    if clashing:
        raise SettingsError(
            f"cdk.json environment {env_name!r}: task_function_prefix "
            f"{settings.task_function_prefix!r} would let tasks invoke the control plane's "
            f"own {', '.join(clashing)}; choose a prefix none of them starts with, "
            f"e.g. 'statewright-{env_name}-task-'"
        )
    return settings
