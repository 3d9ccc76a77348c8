"""Terraform tasks run in CodeBuild: a project (not privileged, pinned Terraform or
OpenTofu with its checksum), the state bucket (versioned, encrypted, private, TLS-only),
the zipped ``specs/`` asset that ``local`` Terraform sources are read from, and the plan
summary module the builds import."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import yaml
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct
from statewright.aws import build_variables, terraform_locks

from infra.bus import ControlBus
from infra.function import log_group, removal_policy
from infra.nag import acknowledge, finding_resource
from infra.paths import MissingSourceError, SourcePaths, require_file
from infra.settings import EnvironmentSettings
from infra.table import StateTable

STATE_LOG_PREFIX = "access-logs/"


class BuildspecError(Exception):
    """The Terraform buildspec is missing or is not a buildspec."""


def load_buildspec(paths: SourcePaths) -> dict[str, Any]:
    path = paths.buildspec
    if not path.is_file():
        raise MissingSourceError(
            f"the Terraform buildspec is not in the tree ({path}); the CodeBuild project "
            "runs it, so the stack cannot be built without it"
        )
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BuildspecError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or "phases" not in spec or "version" not in spec:
        raise BuildspecError(f"{path} is not a CodeBuild buildspec (needs 'version' and 'phases')")
    return spec


class TerraformRunner(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        paths: SourcePaths,
        bus: ControlBus,
        table: StateTable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.env_name = env_name
        policy = removal_policy(settings)
        self.access_logs = s3.Bucket(
            self,
            "StateAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            removal_policy=policy,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket receives the state bucket's server access logs; logging the "
            "log bucket into itself would loop.",
        )
        self.state_bucket = s3.Bucket(
            self,
            "StateBucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=STATE_LOG_PREFIX,
            # Old state versions are the undo history of every environment; keep 90 days.
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=cdk.Duration.days(90))],
            removal_policy=policy,
        )
        self.specs_asset = s3_assets.Asset(self, "SpecsAsset", path=str(paths.specs))
        # The same file computes a plan's summary locally and in the builds.
        self.plan_module = s3_assets.Asset(
            self, "PlanSummaryModule", path=str(require_file(paths.plan_module, "the plan summary"))
        )

        self.log_group = log_group(self, "Logs", settings)
        self.project_name = f"statewright-{env_name}-terraform"
        stack = cdk.Stack.of(self)
        # Built from the name, not the project's attribute: the project needs the role.
        # CodeBuild names the project as the source of the AssumeRole; its builds' ARNs
        # (build/<project>:<id>) are listed too, so the condition holds whichever it sends.
        project_arns = [
            stack.format_arn(
                service="codebuild", resource="project", resource_name=self.project_name
            ),
            stack.format_arn(
                service="codebuild",
                resource="build",
                resource_name=f"{self.project_name}:*",
            ),
        ]
        self.role = iam.Role(
            self,
            "Role",
            # Only this project of this account may assume it (confused-deputy guard).
            assumed_by=iam.ServicePrincipal(
                "codebuild.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": project_arns},
                },
            ),
            description=f"Statewright {env_name} Terraform runner (CodeBuild)",
        )
        self._grant_runner(bus, settings)
        self._grant_build_variables(table)

        self.project = codebuild.Project(
            self,
            "Project",
            project_name=self.project_name,
            description=f"Statewright {env_name}: one Terraform plan, apply or destroy per build",
            build_spec=codebuild.BuildSpec.from_object_to_yaml(load_buildspec(paths)),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType(settings.terraform.compute_type),
                privileged=False,
            ),
            environment_variables={
                name: codebuild.BuildEnvironmentVariable(value=value)
                for name, value in {
                    "TF_DISTRIBUTION": settings.terraform.distribution,
                    "TF_VERSION": settings.terraform.version,
                    "TF_SHA256": settings.terraform.sha256,
                    "STATEWRIGHT_STATE_BUCKET": self.state_bucket.bucket_name,
                    "STATEWRIGHT_TABLE": table.table.table_name,
                    "STATEWRIGHT_BUS": bus.bus_name,
                    "STATEWRIGHT_ENV": env_name,
                    "STATEWRIGHT_SPECS_ASSET": self.specs_asset.s3_object_url,
                    "STATEWRIGHT_PLAN_MODULE": self.plan_module.s3_object_url,
                }.items()
            },
            # No project timeout: every build is started with its task's own timeout.
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group)
            ),
            # The role's policy is written out below, statement by statement; CDK's
            # automatic grants (report groups, a default log group) are not needed.
            role=self.role.without_policy_updates(),
        )
        acknowledge(
            self.project,
            "AwsSolutions-CB4",
            "The project keeps no artifacts and no cache; what a build leaves behind is "
            "Terraform state and outputs in the state bucket (SSE-S3, TLS-only, private) and "
            "its log in CloudWatch Logs, so a customer-managed key would protect nothing more.",
        )

    def _grant_runner(self, bus: ControlBus, settings: EnvironmentSettings) -> None:
        role = self.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LogToOwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListStateBucket",
                actions=["s3:ListBucket"],
                resources=[self.state_bucket.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWriteThisEnvironmentsState",
                # Terraform's S3 backend: state, its lock file (use_lockfile); beside
                # them what the buildspec keeps: outputs, saved plans, the run record.
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.state_objects_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadSpecsAsset",
                actions=["s3:GetObject"],
                resources=[
                    asset.bucket.arn_for_objects(asset.s3_object_key)
                    for asset in (self.specs_asset, self.plan_module)
                ],
            )
        )
        # Users' modules run with this role: their build's report, nothing else.
        bus.grant_task_reports(role)
        self._grant_module_buckets(settings.terraform_module_buckets)
        for index, arn in enumerate(settings.terraform_managed_policy_arns):
            role.add_managed_policy(
                iam.ManagedPolicy.from_managed_policy_arn(self, f"ConfiguredManaged{index}", arn)
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM4[Policy::{arn}]",
                "Named by the operator in cdk.json (terraform_managed_policy_arns) for the "
                "resources this environment's Terraform modules manage.",
            )
        if settings.terraform_policy_statements:
            configured = iam.Policy(self, "ConfiguredPolicy")
            for statement in settings.terraform_policy_statements:
                configured.add_statements(
                    iam.PolicyStatement.from_json(statement.model_dump(exclude_none=True))
                )
                for finding in _wildcard_findings(statement.Action, statement.Resource):
                    acknowledge(
                        configured,
                        finding,
                        "Granted by the operator in cdk.json (terraform_policy_statements) "
                        "for the resources this environment's Terraform modules manage.",
                    )
            configured.attach_to_role(role)
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{finding_resource(self, self.state_objects_arn)}]",
            "Terraform state keys are <env>/<machine>/<source-digest>.tfstate, created per "
            "machine at run time; the grant is limited to this environment's prefix of "
            "its own state bucket.",
        )

    def _grant_build_variables(self, table: StateTable) -> None:
        """GetItem of the attempts' variables items only (statewright/aws/
        build_variables.py): the condition holds the build to their key prefix, so it
        can read no machine, spec, idempotency record or the report-token key; and
        PutItem of the states' run records only (statewright/aws/terraform_locks.py,
        written before Terraform may take a state's lock), so a build can overwrite no
        machine, variables item or any other item of the table."""
        self._grant_items(table, "ReadBuildVariablesItems", "GetItem", build_variables.PREFIX)
        self._grant_items(table, "WriteBuildRunRecords", "PutItem", terraform_locks.PREFIX)

    def _grant_items(self, table: StateTable, sid: str, action: str, prefix: str) -> None:
        """``dynamodb:<action>`` on the table's items whose partition key starts with
        ``prefix``, and no other item."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=[f"dynamodb:{action}"],
                resources=[table.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{prefix}*"]}},
            )
        )

    def _grant_module_buckets(self, buckets: list[str]) -> None:
        """Read access to the buckets that specs' `s3` Terraform sources name: a source
        is a key or a prefix, so the runner lists the bucket and reads its objects."""
        if not buckets:
            return
        partition = cdk.Aws.PARTITION
        bucket_arns = [f"arn:{partition}:s3:::{bucket}" for bucket in buckets]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListModuleBuckets", actions=["s3:ListBucket"], resources=bucket_arns
            )
        )
        object_arns = [f"{arn}/*" for arn in bucket_arns]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModuleBuckets", actions=["s3:GetObject"], resources=object_arns
            )
        )
        for arn in object_arns:
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{finding_resource(self, arn)}]",
                "Named by the operator in cdk.json (terraform_module_buckets): specs' s3 "
                "Terraform sources are keys or prefixes of this bucket, read-only.",
            )

    @property
    def state_objects_arn(self) -> str:
        return self.state_bucket.arn_for_objects(f"{self.env_name}/*")

    @property
    def lock_objects_arn(self) -> str:
        """``<env>/<machine>/<source-digest>.tfstate.tflock``: Terraform's lock objects,
        which the control plane deletes when a stopped build left one
        (statewright/aws/terraform_locks.py)."""
        return self.state_bucket.arn_for_objects(f"{self.env_name}/*.tflock")

    @property
    def variables_objects_arn(self) -> str:
        """``<env>/<machine>/<source-digest>.inputs/<attempt>.tfvars.json``: the attempts'
        variables, which the dispatcher and reconciler write for the builds to read."""
        return self.state_bucket.arn_for_objects(f"{self.env_name}/*.inputs/*")


def _wildcard_findings(actions: list[str], resources: list[str]) -> list[str]:
    findings = [f"AwsSolutions-IAM5[Action::{a}]" for a in actions if "*" in a]
    findings += [f"AwsSolutions-IAM5[Resource::{r}]" for r in resources if "*" in r]
    return findings
