"""The DynamoDB table's key schema, shared by the store and the CDK table construct so
code and infrastructure cannot drift apart (tests create tables from the synthesized
template, which the CDK builds from these names)."""

from __future__ import annotations

import hashlib

PARTITION_KEY = "pk"
SORT_KEY = "sk"
# Sparse index for GET /machines?spec=&state= : only machine items carry these keys.
LIST_INDEX = "by_spec"
LIST_INDEX_PARTITION_KEY = "gsi1pk"
LIST_INDEX_SORT_KEY = "gsi1sk"
# Epoch seconds; DynamoDB's TTL deletes idempotency records and old history with it.
TTL_ATTRIBUTE = "expires_at"
# Sparse index of machines with reconciler work (statewright.due): only those carry its
# keys, so idle machines cost a reconciler run nothing. The partition key is one of
# DUE_SHARDS shards (by a hash of the machine id), so the index's writes spread over
# that many partitions instead of one; its sort key is ``<due time>#<machine id>``.
# KEYS_ONLY: a write that leaves the due time alone writes nothing to the index.
DUE_INDEX = "by_due"
DUE_INDEX_PARTITION_KEY = "gsi2pk"
DUE_INDEX_SORT_KEY = "gsi2sk"
DUE_SHARDS = 16  # never fewer than before: entries in a dropped shard would be missed


def hashed_key(prefix: str, name: str) -> str:
    """``<prefix><40 hex of sha256(name)>``: the partition key of an item named by a
    string of any length (a build's variables, a state's run record), which the
    CodeBuild role's ``dynamodb:LeadingKeys`` conditions match by ``prefix``."""
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:40]
