"""The DynamoDB table the tests create: the key schema the CDK app synthesizes.

Synthesizing takes seconds, so the definition is read once per process. Until the CDK
app (``infra.app.build_app``) is in the tree, the definition comes from
``statewright.aws.table_layout`` — the names the CDK construct is built from."""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

from statewright.aws.table_layout import (
    LIST_INDEX,
    LIST_INDEX_PARTITION_KEY,
    LIST_INDEX_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
)

TEMPLATE_ENV = "dev"


def _from_layout() -> dict[str, Any]:
    return {
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in (PARTITION_KEY, SORT_KEY, LIST_INDEX_PARTITION_KEY, LIST_INDEX_SORT_KEY)
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": LIST_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": LIST_INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        "source": "statewright.aws.table_layout",
    }


def _from_template() -> dict[str, Any]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app  # type: ignore[import-not-found,unused-ignore]

    assembly = build_app(TEMPLATE_ENV).synth()
    tables = [
        (stack.stack_name, resource["Properties"])
        for stack in assembly.stacks
        for resource in stack.template.get("Resources", {}).values()
        if resource["Type"] == "AWS::DynamoDB::Table"
    ]
    if len(tables) != 1:
        raise AssertionError(f"expected one AWS::DynamoDB::Table in the template, got {tables}")
    stack_name, props = tables[0]
    gsis = [
        {
            "IndexName": gsi["IndexName"],
            "KeySchema": gsi["KeySchema"],
            "Projection": gsi.get("Projection", {"ProjectionType": "ALL"}),
        }
        for gsi in props.get("GlobalSecondaryIndexes", [])
    ]
    return {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "GlobalSecondaryIndexes": gsis,
        "source": f"synthesized stack {stack_name}",
    }


@functools.cache
def table_definition() -> dict[str, Any]:
    """KeySchema, AttributeDefinitions and GSIs of the table, and where they came from."""
    if importlib.util.find_spec("infra.app") is not None:
        return _from_template()
    return _from_layout()


def create_table(client: Any, name: str) -> None:
    """Create the table (on-demand) from :func:`table_definition`."""
    definition = table_definition()
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": definition["KeySchema"],
        "AttributeDefinitions": definition["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if definition["GlobalSecondaryIndexes"]:
        kwargs["GlobalSecondaryIndexes"] = definition["GlobalSecondaryIndexes"]
    client.create_table(**kwargs)
    # dynalite creates a table asynchronously even with --createTableMs 0: under load a
    # write right after CreateTable can meet ResourceNotFoundException. Wait as on AWS.
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
