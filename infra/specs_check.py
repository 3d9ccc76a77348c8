"""The specs a deployment ships, checked at synth. Errors first, before anything is
synthesized: each spec must lint clean, and each executor it names must have an AWS
implementation (a plugin may provide only a local one); a spec that the dispatcher would
refuse at load never deploys. Then warnings, from the specs and cdk.json alone (nothing is
looked up in AWS): a Lambda task must name a function the task runner may invoke, and a
Terraform task's module must be somewhere its CodeBuild role can read. app.py prints one
line per task that cannot run, naming the spec, the task and why."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import ValidationError
from statewright.catalog import SpecCatalog
from statewright.errors import ConfigurationError
from statewright.executors.builtin import LambdaConfig, LocalSource, S3Source, TerraformConfig
from statewright.executors.registry import require_implementations
from statewright.spec.models import TaskSpec

from infra.settings import EnvironmentSettings


class SpecsError(Exception):
    """The bundled specs cannot run on AWS; the message names each spec and problem."""


def check_specs(folder: Path) -> None:
    try:
        require_implementations(SpecCatalog.from_folders([folder]).specs(), "aws")
    except ConfigurationError as exc:
        raise SpecsError(f"{folder}: {exc}") from exc


@dataclass(frozen=True)
class SpecProblem:
    """One task of one shipped spec that this deployment cannot run."""

    spec: str
    task: str
    reason: str

    def __str__(self) -> str:
        return f"spec {self.spec}, task {self.task}: {self.reason}"


def unrunnable_tasks(specs_dir: Path, settings: EnvironmentSettings) -> list[SpecProblem]:
    """The tasks of the specs in specs_dir (which check_specs accepted) that a deployment
    with these settings could not run: warnings, since the functions, buckets and
    modules they name may be the operator's to change."""
    problems: list[SpecProblem] = []
    for spec in SpecCatalog.from_folders([specs_dir]).specs():
        spec_dir = Path(spec.base_dir) if spec.base_dir else specs_dir
        for name, task in spec.tasks.items():
            problem = _task_problem(task, spec_dir, specs_dir, settings)
            if problem:
                problems.append(SpecProblem(spec.name, name, problem))
    return problems


def _task_problem(
    task: TaskSpec, spec_dir: Path, specs_dir: Path, settings: EnvironmentSettings
) -> str | None:
    try:
        if task.executor == "lambda":
            return _lambda_problem(LambdaConfig.model_validate(task.config), settings)
        if task.executor == "terraform":
            source = TerraformConfig.model_validate(task.config).source
            if isinstance(source, S3Source):
                return _s3_problem(source, settings)
            return _local_problem(source, spec_dir, specs_dir)
    except ValidationError as exc:  # the linter already refused it; say so again here
        return f"its config is not valid: {exc.errors()[0]['msg']}"
    return None  # a plugin executor: its needs are not known here


def _lambda_problem(config: LambdaConfig, settings: EnvironmentSettings) -> str | None:
    prefix = settings.task_function_prefix
    function = config.function_name
    if not function.startswith(prefix):
        return (
            f"Lambda function {function!r} is outside task_function_prefix {prefix!r}, so "
            "the task runner may not invoke it; name the function (and the spec) with the "
            "prefix, or change task_function_prefix in cdk.json"
        )
    region, account = _region_and_account(config.name)
    pinned = {"account": (account, settings.account), "region": (region, settings.region)}
    for what, (named, own) in pinned.items():
        if named and own and named != own:
            return (
                f"Lambda function {config.name!r} is in {what} {named}, but this deployment "
                f"is pinned to {own}; the task runner may invoke functions of its own "
                f"{what} only"
            )
        if named and not own:
            return (
                f"Lambda function {config.name!r} names {what} {named}, but cdk.json does "
                f"not pin this environment's {what}; it runs only if the stack is deployed "
                f"there (name the function without its ARN, or set {what} in cdk.json)"
            )
    return None


def _region_and_account(name: str) -> tuple[str, str]:
    """The region and account a Lambda name spells out ("" where it names none), from
    ``arn:aws:lambda:<region>:<account>:function:<name>[:q]`` or a partial ARN such as
    ``<account>:function:<name>``; a bare ``<name>[:q]`` names neither."""
    parts = name.split(":")
    if parts[0] == "arn":
        parts = parts[3:]  # arn, partition, lambda
    head = parts[: parts.index("function")] if "function" in parts else []
    region = next((part for part in head if not part.isdigit()), "")
    account = next((part for part in head if part.isdigit()), "")
    return region, account


def _s3_problem(source: S3Source, settings: EnvironmentSettings) -> str | None:
    if source.bucket in settings.terraform_module_buckets:
        return None
    if settings.terraform_managed_policy_arns:
        return None  # a managed policy may grant it; its contents are not known here
    sample = source.key + "main.tf" if source.key.endswith("/") else source.key
    wanted = f"arn:aws:s3:::{source.bucket}/{sample}"
    for statement in settings.terraform_policy_statements:
        if statement.Effect != "Allow" or statement.Condition:
            continue
        reads = any(fnmatchcase("s3:GetObject", action) for action in statement.Action)
        covers = any(
            fnmatchcase(wanted, resource.replace("arn:*:", "arn:aws:"))
            for resource in statement.Resource
        )
        if reads and covers:
            return None
    return (
        f"its Terraform module is in bucket {source.bucket!r}, which the CodeBuild role "
        "may not read; add the bucket to terraform_module_buckets in cdk.json (or ship "
        "the module inside specs/ as a local source)"
    )


def _local_problem(source: LocalSource, spec_dir: Path, specs_dir: Path) -> str | None:
    if posixpath.isabs(source.location):
        return (
            f"its local Terraform source {source.location!r} is an absolute path of this "
            "machine; CodeBuild gets only the specs folder, so name a folder inside it"
        )
    folder = (spec_dir / source.location).resolve()
    root = specs_dir.resolve()
    if folder != root and root not in folder.parents:
        return (
            f"its local Terraform source {source.location!r} is outside {specs_dir.name}/, "
            "the only folder the deployment ships to CodeBuild; move the module inside it "
            "or use an s3 source"
        )
    if not folder.is_dir():
        return f"its local Terraform source {source.location!r} is not a folder"
    return None
