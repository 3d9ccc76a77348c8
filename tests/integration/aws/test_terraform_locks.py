"""The lock a stopped build left on a state, under moto (S3, DynamoDB and CodeBuild): the
next run on that state deletes the ``.tflock`` object only when the lock names the build
of the state's run record item (statewright/aws/terraform_locks.py); a lock held by
anyone else stays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from statewright.aws.table_layout import PARTITION_KEY, SORT_KEY
from statewright.aws.terraform_locks import (
    SORT_KEY_VALUE,
    RunRecords,
    lock_key,
    record_key,
    release_stopped_builds_lock,
)

from tests.integration.aws.deployment import (
    PROJECT,
    REGION,
    STATE_BUCKET,
    TABLE,
    create_control_plane_resources,
)
from tests.integration.aws.tables import create_table

STATE_KEY = "test/pr-1/0123456789abcdef.tfstate"
BUILD_HOST = "root@ip-10-0-12-7"  # Who: user@host of the stopped build's container
STARTED = datetime(2026, 12, 1, 7, 0, 0, 123456, tzinfo=UTC)


class Clients:
    """moto's S3, DynamoDB and CodeBuild; CodeBuild answers a build still running as AWS
    does (moto calls every build it is asked about finished)."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.codebuild = boto3.client("codebuild", region_name=REGION)
        self.running: set[str] = set()
        self.codebuild.meta.events.register(
            "after-call.codebuild.BatchGetBuilds", self._still_running
        )

    def _still_running(self, parsed: dict[str, Any], **_: Any) -> None:
        for build in parsed.get("builds", []):
            if build["id"] in self.running:
                build["buildStatus"] = "IN_PROGRESS"

    def start_build(self) -> str:
        build_id: str = self.codebuild.start_build(projectName=PROJECT)["build"]["id"]
        return build_id

    def put(self, key: str, document: dict[str, Any]) -> None:
        self.s3.put_object(Bucket=STATE_BUCKET, Key=key, Body=json.dumps(document).encode())

    def put_record(self, **attributes: str) -> None:
        key = {PARTITION_KEY: record_key(STATE_KEY), SORT_KEY: SORT_KEY_VALUE}
        item = {name: {"S": value} for name, value in {**key, **attributes}.items()}
        self.dynamodb.put_item(TableName=TABLE, Item=item)  # type: ignore[arg-type]

    def record_run(self, build_id: str, who: str = BUILD_HOST) -> None:
        """What the buildspec's record_run writes before Terraform runs."""
        self.put_record(build_id=build_id, who=who, started=STARTED.isoformat())

    def lock(self, who: str = BUILD_HOST, created: datetime | None = None) -> dict[str, Any]:
        """Terraform's lock info, as its S3 backend writes the .tflock object (Created
        in Go's RFC 3339 with nanoseconds)."""
        when = created or STARTED + timedelta(seconds=20)
        info = {
            "ID": "3b1f3a52-93c5-4a3e-8d0e-8f8a1c5e2f11",
            "Operation": "OperationTypeApply",
            "Info": "",
            "Who": who,
            "Version": "1.11.4",
            "Created": when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",
            "Path": f"{STATE_BUCKET}/{STATE_KEY}",
        }
        self.put(lock_key(STATE_KEY), info)
        return info

    def held(self) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=STATE_BUCKET, Key=lock_key(STATE_KEY))["Body"]
        except self.s3.exceptions.NoSuchKey:
            return None
        held: dict[str, Any] = json.loads(body.read())
        return held

    def release(self) -> Any:
        return release_stopped_builds_lock(
            self.s3,
            self.codebuild,
            RunRecords(self.dynamodb, TABLE),
            bucket=STATE_BUCKET,
            state_key=STATE_KEY,
        )


@pytest.fixture
def clients(aws: None) -> Iterator[Clients]:
    create_control_plane_resources()
    clients = Clients()
    create_table(clients.dynamodb, TABLE)
    yield clients


def test_the_lock_a_stopped_build_left_is_released(clients: Clients) -> None:
    build = clients.start_build()
    clients.record_run(build)
    info = clients.lock()
    clients.codebuild.stop_build(id=build)
    check = clients.release()
    assert check.released, check.reason
    assert clients.held() is None
    assert info["ID"] in check.reason and build in check.reason


@pytest.mark.parametrize(
    ("who", "created", "why"),
    [
        # Someone running terraform by hand, or another tool.
        ("alice@laptop", None, "not that of build"),
        # The same container name, but the lock is older than the recorded build.
        (BUILD_HOST, STARTED - timedelta(minutes=5), "not that of build"),
    ],
)
def test_a_lock_held_by_anyone_else_stays(
    clients: Clients, who: str, created: datetime | None, why: str
) -> None:
    build = clients.start_build()
    clients.record_run(build)
    info = clients.lock(who=who, created=created)
    clients.codebuild.stop_build(id=build)
    check = clients.release()
    assert not check.released and why in check.reason
    assert clients.held() == info


def test_the_lock_of_a_build_still_running_stays(clients: Clients) -> None:
    """A start repeated for an attempt whose build is running (the reconciler's restart)
    must not take its lock away."""
    build = clients.start_build()
    clients.running.add(build)
    clients.record_run(build)
    info = clients.lock()
    check = clients.release()
    assert not check.released and "is running" in check.reason
    assert clients.held() == info


def test_no_lock_no_record_or_an_unreadable_one_change_nothing(clients: Clients) -> None:
    assert clients.release().reason == "the state is not locked"
    info = clients.lock()
    check = clients.release()
    assert not check.released and "no run of ours is recorded" in check.reason
    # A run record of another state tells nothing about this one.
    other = {PARTITION_KEY: record_key(STATE_KEY + "x"), SORT_KEY: SORT_KEY_VALUE}
    clients.dynamodb.put_item(
        TableName=TABLE,
        Item={
            **{name: {"S": value} for name, value in other.items()},
            "build_id": {"S": clients.start_build()},
            "who": {"S": BUILD_HOST},
            "started": {"S": STARTED.isoformat()},
        },
    )
    assert "no run of ours is recorded" in clients.release().reason
    clients.put_record(build_id="x")
    check = clients.release()
    assert not check.released and "not understood" in check.reason
    assert clients.held() == info


def test_a_lock_taken_again_while_it_was_checked_stays(clients: Clients) -> None:
    build = clients.start_build()
    clients.record_run(build)
    clients.lock()
    clients.codebuild.stop_build(id=build)
    again: dict[str, Any] = {}

    def taken_again(**_: Any) -> None:
        # Between the read and the delete, someone else takes the lock.
        again.update(clients.lock(who="alice@laptop"))

    clients.s3.meta.events.register_first("before-call.s3.DeleteObject", taken_again)
    check = clients.release()
    assert not check.released and "changed while" in check.reason
    assert clients.held() == again
