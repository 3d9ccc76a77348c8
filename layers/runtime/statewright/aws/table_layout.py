"""The DynamoDB table's key schema, shared by the store and the CDK table construct so
code and infrastructure cannot drift apart (tests create tables from the synthesized
template, which the CDK builds from these names)."""

from __future__ import annotations

PARTITION_KEY = "pk"
SORT_KEY = "sk"
# Sparse index for GET /machines?spec=&state= : only machine items carry these keys.
LIST_INDEX = "by_spec"
LIST_INDEX_PARTITION_KEY = "gsi1pk"
LIST_INDEX_SORT_KEY = "gsi1sk"
# Epoch seconds; DynamoDB's TTL deletes idempotency records and old history with it.
TTL_ATTRIBUTE = "expires_at"
