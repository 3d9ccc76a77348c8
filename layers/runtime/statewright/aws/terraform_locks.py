"""The lock a stopped build left on a Terraform state, released by the next run on that
state — and only when the lock is that build's (docs/aws.md, "Locks").

Terraform's S3 backend (``use_lockfile``) holds a state's lock as the object
``<state key>.tflock``, whose JSON is Terraform's lock info: ``ID``, ``Operation``,
``Who`` (``user@host`` of the process that took it), ``Version``, ``Created`` and
``Path``. A build stopped by ``StopBuild`` (``cancel: force``, or its timeout) may die
holding it. Terraform lets no one put a name of their own in the lock info, so every
build first writes a *run record* (the buildspec's ``record_run``): its build id, its
``user@host`` and when it started, as one item of the control plane's table per state
(:func:`record_key`; PutItem, 1 write unit, where an S3 PUT costs eight times more). The
items live under their own key prefix, :data:`PREFIX`, the only one the CodeBuild role
may put (``dynamodb:LeadingKeys``, infra/terraform_runner.py). A lock is the recorded build's
when its ``Who`` is the record's and it was taken after that build started; it is
released only if that build is no longer running. A lock held by anyone else (a person
running ``terraform`` by hand, another tool) stays, and the next build waits for it for
its lock timeout, then fails with Terraform's message."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from statewright.aws.table_layout import PARTITION_KEY, SORT_KEY, hashed_key

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".tflock"  # Terraform's own name for the lock object of a state
RUNNING = "IN_PROGRESS"
# The partition key prefix of run record items, and their sort key. The buildspec and
# the CodeBuild role's LeadingKeys condition name them too (tests check they agree).
PREFIX = "BUILDRUN#"
SORT_KEY_VALUE = "BUILDRUN"


def lock_key(state_key: str) -> str:
    return f"{state_key}{LOCK_SUFFIX}"


def record_key(state_key: str) -> str:
    """``BUILDRUN#<digest>``: the run record item of one state (its key in the state
    bucket), written again by every build on that state."""
    return hashed_key(PREFIX, state_key)


class LockInfo(BaseModel):
    """Terraform's lock info, as its S3 backend stores it in the ``.tflock`` object."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(alias="ID")
    who: str = Field(alias="Who")
    created: datetime = Field(alias="Created")
    operation: str = Field(default="", alias="Operation")


class RunRecord(BaseModel):
    """What a build writes (the string attributes of its run record item) before
    Terraform may take the state's lock."""

    model_config = ConfigDict(extra="ignore")

    build_id: str
    who: str
    started: datetime


@dataclass(frozen=True)
class LockCheck:
    """What the next run found: whether it released a lock, and why (for the log)."""

    released: bool
    reason: str
    locked: bool = True


def _read(s3: S3Client, bucket: str, key: str) -> tuple[bytes, str] | None:
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    return got["Body"].read(), got["ETag"]


def _read_record(dynamodb: DynamoDBClient, table: str, state_key: str) -> RunRecord | None:
    """The state's run record, read consistently: the build that wrote it may have
    been stopped a moment ago."""
    got = dynamodb.get_item(
        TableName=table,
        Key={PARTITION_KEY: {"S": record_key(state_key)}, SORT_KEY: {"S": SORT_KEY_VALUE}},
        ConsistentRead=True,
    )
    if "Item" not in got:
        return None
    item = got["Item"]
    return RunRecord.model_validate(
        {name: item[name].get("S") for name in RunRecord.model_fields if name in item}
    )


def _is_running(codebuild: CodeBuildClient, build_id: str) -> bool:
    builds = codebuild.batch_get_builds(ids=[build_id]).get("builds", [])
    # A build CodeBuild no longer knows (it keeps them a year) is long over.
    return any(build.get("buildStatus") == RUNNING for build in builds)


@dataclass(frozen=True)
class RunRecords:
    """Where the run records are: the control plane's table."""

    dynamodb: DynamoDBClient
    table: str


def _stopped_builds_lock(
    s3: S3Client, codebuild: CodeBuildClient, records: RunRecords, bucket: str, state_key: str
) -> tuple[LockInfo, RunRecord, str] | LockCheck:
    """The lock, the run record naming its holder and the lock object's ETag, when the
    lock is that of a build that has ended; else why not."""
    lock = _read(s3, bucket, lock_key(state_key))
    if lock is None:
        return LockCheck(False, "the state is not locked", locked=False)
    recorded = _read_record(records.dynamodb, records.table, state_key)
    if recorded is None:
        return LockCheck(False, "the state is locked and no run of ours is recorded on it")
    info = LockInfo.model_validate_json(lock[0])
    if info.who != recorded.who or info.created < recorded.started:
        return LockCheck(
            False,
            f"the lock ({info.operation or 'an operation'} by {info.who}, "
            f"{info.created.isoformat()}) is not that of build {recorded.build_id}, "
            "the last run recorded on the state",
        )
    if _is_running(codebuild, recorded.build_id):
        return LockCheck(False, f"build {recorded.build_id} holds the lock and is running")
    return info, recorded, lock[1]


def _could_not(exc: ClientError | BotoCoreError) -> LockCheck:
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == (
        "PreconditionFailed"
    ):
        return LockCheck(False, "the lock changed while it was checked; it stays")
    return LockCheck(False, f"could not check the lock: {exc}")


def release_stopped_builds_lock(
    s3: S3Client,
    codebuild: CodeBuildClient,
    records: RunRecords,
    *,
    bucket: str,
    state_key: str,
) -> LockCheck:
    """Delete the state's lock if the build of the state's run record holds it and has
    ended; otherwise leave everything as it is. Never raises for what S3, DynamoDB or
    CodeBuild answer: the build about to start then meets the lock, if there is one,
    itself."""
    try:
        found = _stopped_builds_lock(s3, codebuild, records, bucket, state_key)
        if isinstance(found, LockCheck):
            return found
        info, recorded, etag = found
        # Only the very lock that was read: one taken again meanwhile stays.
        s3.delete_object(Bucket=bucket, Key=lock_key(state_key), IfMatch=etag)
    except ValidationError as exc:
        return LockCheck(False, f"the lock or the run record is not understood: {exc}")
    except (ClientError, BotoCoreError) as exc:
        return _could_not(exc)
    return LockCheck(
        True, f"released lock {info.id} left by build {recorded.build_id}, which has ended"
    )
