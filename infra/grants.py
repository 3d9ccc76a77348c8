"""What the dispatcher and the reconciler may do: both drive the service layer, so both
touch the same table, bus, task runner, CodeBuild project and stored Terraform outputs."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from infra.bus import ControlBus
from infra.nag import acknowledge, finding_resource
from infra.table import StateTable
from infra.task_runner import TaskRunner
from infra.terraform_runner import TerraformRunner

# What statewright/aws/dynamodb_store.py calls: items and history on the table, listings
# (Query, or Scan when no spec is named) on the by_spec index, which is read-only.
TABLE_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
]
INDEX_ACTIONS = ["dynamodb:Query", "dynamodb:Scan"]
# The reconciler's reads of the sparse by_due index: Query, shard by shard.
DUE_INDEX_ACTIONS = ["dynamodb:Query"]


def grant_service_access(
    role: iam.IRole,
    *,
    table: StateTable,
    bus: ControlBus,
    task_runner: TaskRunner,
    terraform: TerraformRunner,
) -> None:
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="MachinesTable",
            actions=TABLE_ACTIONS,
            resources=[table.table.table_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ListMachinesIndex",
            actions=INDEX_ACTIONS,
            resources=[table.index_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="DueMachinesIndex",
            actions=DUE_INDEX_ACTIONS,
            resources=[table.due_index_arn],
        )
    )
    bus.grant_put(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="StartLambdaTasks",
            actions=["lambda:InvokeFunction"],
            resources=[task_runner.function.function_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="RunTerraformBuilds",
            actions=["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"],
            resources=[terraform.project.project_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadTerraformOutputs",
            actions=["s3:GetObject"],
            resources=[terraform.state_objects_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            # A build's variables (the machine's metadata among them) go through the state
            # bucket, never through the build's visible environment; only these objects.
            sid="WriteTerraformVariables",
            actions=["s3:PutObject"],
            resources=[terraform.variables_objects_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            # The lock a stopped build left, deleted by the next run on its state only
            # when it is that build's (statewright/aws/terraform_locks.py).
            sid="ReleaseStoppedBuildsLocks",
            actions=["s3:DeleteObject"],
            resources=[terraform.lock_objects_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            # Without it S3 answers a missing outputs object with 403 instead of
            # NoSuchKey, and the dispatcher could not tell "not stored yet" from a fault.
            sid="TellMissingOutputsApart",
            actions=["s3:ListBucket"],
            resources=[terraform.state_bucket.bucket_arn],
        )
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{finding_resource(role, terraform.state_objects_arn)}]",
        "A build's `terraform output -json` is stored beside its state under "
        "<env>/<machine>/..., named at run time; reading is limited to this environment's "
        "prefix of the control plane's own state bucket.",
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{finding_resource(role, terraform.lock_objects_arn)}]",
        "Terraform's lock objects are <env>/<machine>/<source-digest>.tfstate.tflock, named "
        "at run time; deleting is limited to those objects of the control plane's own state "
        "bucket, and the code deletes one only when a stopped build of its own holds it.",
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{finding_resource(role, terraform.variables_objects_arn)}]",
        "An attempt's Terraform variables are written beside its machine's state under "
        "<env>/<machine>/<source-digest>.inputs/, named at run time; writing is limited to "
        "those objects of the control plane's own state bucket.",
    )
