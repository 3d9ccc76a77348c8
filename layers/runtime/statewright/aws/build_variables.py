"""A Terraform build's variables, handed to it through the control plane's table.

A build's environment is shown to whoever may read the build (BatchGetBuilds, the
console, CloudTrail's record of StartBuild), so the attempt's Terraform variables (the
machine's metadata among them) never travel in it. The dispatcher writes them, as ONE
JSON object, to an item of the control plane's own table just before StartBuild, and
the build reads that item with GetItem (infra/buildspec/terraform.yml). One write unit
per kilobyte instead of an S3 PUT per attempt; the item is written once per attempt
(a repeated start finds it and keeps it) and DynamoDB's TTL deletes it a day after the
attempt's timeout.

The items live under their own key prefix, :data:`PREFIX`, the only one the CodeBuild
role may read (``dynamodb:LeadingKeys``, infra/terraform_runner.py): a build can read
no machine, spec, idempotency record or the report-token key. Variables too big for an
item (DynamoDB's 400 KB) go through the state bucket as before
(statewright.aws.codebuild_executor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from statewright.aws.table_layout import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, hashed_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The partition key prefix of build variable items, and their sort key. The buildspec
# and the CodeBuild role's LeadingKeys condition name them too (tests check they agree).
PREFIX = "BUILDVARS#"
SORT_KEY_VALUE = "BUILDVARS"
VARIABLES_ATTRIBUTE = "variables"
# An item holds at most 400 KB, attribute names and the key included: variables up to
# this many bytes (UTF-8) go in an item, larger ones through the state bucket.
MAX_ITEM_BYTES = 380_000
# How long past the attempt's timeout an item is kept (a late restart of the attempt
# reads it again) before DynamoDB's TTL deletes it.
KEPT_AFTER_TIMEOUT_SECONDS = 86_400


def item_key(start_key: str) -> str:
    """``BUILDVARS#<digest>``: one item per attempt of one incarnation of a machine
    (``start_key``, statewright.model.TaskInvocation.start_key), so a machine created
    again under the same id never reads its predecessor's variables."""
    return hashed_key(PREFIX, start_key)


def fits(body: str) -> bool:
    """Whether variables of this JSON text fit an item."""
    return len(body.encode()) <= MAX_ITEM_BYTES


class BuildVariables:
    """Writes the variables items of one deployment's table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.table = table

    def put(self, key: str, body: str, *, expires_at: int) -> None:
        """The attempt's variables at ``key``, unless an earlier start of the attempt
        wrote them already: every build of one attempt reads the same variables.
        Raises what DynamoDB raises (the executor defers the start)."""
        client = self._client
        try:
            client.put_item(
                TableName=self.table,
                Item={
                    PARTITION_KEY: {"S": key},
                    SORT_KEY: {"S": SORT_KEY_VALUE},
                    VARIABLES_ATTRIBUTE: {"S": body},
                    TTL_ATTRIBUTE: {"N": str(expires_at)},
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except client.exceptions.ConditionalCheckFailedException:
            return  # written by an earlier start of this attempt: those stay
