"""The control plane's single DynamoDB table (key names shared with the store)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from statewright.aws import table_layout

from infra.settings import EnvironmentSettings


class StateTable(Construct):
    """On-demand, point-in-time recovery, TTL on ``expires_at``, encrypted with KMS, the
    sparse ``by_spec`` index for listing machines by spec and state, and the sparse
    ``by_due`` index of machines with reconciler work."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvironmentSettings):
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=table_layout.PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=table_layout.SORT_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=table_layout.TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=settings.retain,
            removal_policy=(
                cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY
            ),
        )
        # Keys only, both: most writes change no index key, so they write nothing to the
        # index; a read pays a BatchGetItem for the machines it found (docs/aws.md).
        for name, partition_key, sort_key in (
            # GET /machines?spec=&state=
            (
                table_layout.LIST_INDEX,
                table_layout.LIST_INDEX_PARTITION_KEY,
                table_layout.LIST_INDEX_SORT_KEY,
            ),
            # the reconciler's machines with work
            (
                table_layout.DUE_INDEX,
                table_layout.DUE_INDEX_PARTITION_KEY,
                table_layout.DUE_INDEX_SORT_KEY,
            ),
        ):
            self.table.add_global_secondary_index(
                index_name=name,
                partition_key=dynamodb.Attribute(
                    name=partition_key, type=dynamodb.AttributeType.STRING
                ),
                sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            )

    @property
    def index_arn(self) -> str:
        return f"{self.table.table_arn}/index/{table_layout.LIST_INDEX}"

    @property
    def due_index_arn(self) -> str:
        return f"{self.table.table_arn}/index/{table_layout.DUE_INDEX}"
