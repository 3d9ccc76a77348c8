"""The reference model against the Service on DynamoStore, on DynamoDB under moto (a
table per example, from the key schema the CDK app synthesizes), with the AWS
reconciler's recovery (pending tasks only; running ones belong to Lambda/CodeBuild)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import boto3
from moto import mock_aws
from statewright.aws.dynamodb_store import DynamoStore
from statewright.ports import Store

from tests.integration.aws.tables import create_table
from tests.reliability.model.runner import run_model

REGION = "us-east-1"
_tables = itertools.count()


def open_dynamodb() -> tuple[Store, Callable[[], None]]:
    client = boto3.client("dynamodb", region_name=REGION)
    name = f"statewright-model-{next(_tables)}"
    create_table(client, name)
    return DynamoStore(client, name), lambda: client.delete_table(TableName=name)


def test_the_service_on_dynamodb_agrees_with_the_model() -> None:
    with mock_aws():
        figures = run_model("model-dynamodb", open_dynamodb, local=False, examples=(6, 40))
    assert figures["crashes"] > 0 and figures["interleavings"] > 0
