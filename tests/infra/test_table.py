"""The machines table: the store's key schema, on-demand, PITR, TTL, encryption."""

from __future__ import annotations

from aws_cdk.assertions import Match
from statewright.aws import table_layout

from tests.infra.conftest import Synthesized
from tests.integration.aws import tables


def test_key_schema_and_index_come_from_the_store_layout(synth: Synthesized) -> None:
    # The tables every test creates (tests/integration/aws/tables.py) are this one.
    synth.template.resource_count_is("AWS::DynamoDB::Table", 1)
    synth.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": tables.KEY_SCHEMA,
            "GlobalSecondaryIndexes": tables.GLOBAL_SECONDARY_INDEXES,
            "AttributeDefinitions": Match.array_with(tables.ATTRIBUTE_DEFINITIONS),
        },
    )


def test_on_demand_pitr_ttl_and_encryption(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {
                "AttributeName": table_layout.TTL_ATTRIBUTE,
                "Enabled": True,
            },
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_removal_policy_follows_the_environment(synth: Synthesized) -> None:
    _, table = synth.one("AWS::DynamoDB::Table")
    if synth.settings.retain:
        assert table["DeletionPolicy"] == "Retain"
        assert table["Properties"]["DeletionProtectionEnabled"] is True
    else:
        assert table["DeletionPolicy"] == "Delete"
        assert table["Properties"]["DeletionProtectionEnabled"] is False
