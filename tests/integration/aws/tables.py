"""The DynamoDB table the tests create, from ``statewright.aws.table_layout`` — the names
the store uses and the CDK table construct is built from. tests/infra/test_table.py
checks that the synthesized template's table has exactly this key schema and these indexes, so
tables created here are the deployed one without every test process synthesizing the
CDK app."""

from __future__ import annotations

from typing import Any

from statewright.aws.table_layout import (
    DUE_INDEX,
    DUE_INDEX_PARTITION_KEY,
    DUE_INDEX_SORT_KEY,
    LIST_INDEX,
    LIST_INDEX_PARTITION_KEY,
    LIST_INDEX_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
)

KEY_SCHEMA = [
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": name, "AttributeType": "S"}
    for name in (
        PARTITION_KEY,
        SORT_KEY,
        LIST_INDEX_PARTITION_KEY,
        LIST_INDEX_SORT_KEY,
        DUE_INDEX_PARTITION_KEY,
        DUE_INDEX_SORT_KEY,
    )
]
GLOBAL_SECONDARY_INDEXES = [
    {
        "IndexName": LIST_INDEX,
        "KeySchema": [
            {"AttributeName": LIST_INDEX_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": LIST_INDEX_SORT_KEY, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    },
    {
        "IndexName": DUE_INDEX,
        "KeySchema": [
            {"AttributeName": DUE_INDEX_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": DUE_INDEX_SORT_KEY, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    },
]


def create_table(client: Any, name: str) -> None:
    """Create the table (on-demand), and wait until it can be written."""
    client.create_table(
        TableName=name,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
        GlobalSecondaryIndexes=GLOBAL_SECONDARY_INDEXES,
        BillingMode="PAY_PER_REQUEST",
    )
    # dynalite creates a table asynchronously even with --createTableMs 0: under load a
    # write right after CreateTable can meet ResourceNotFoundException. Wait as on AWS.
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
