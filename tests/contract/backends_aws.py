"""Store factories for the contract suite (aws adapters): DynamoStore on DynamoDB under
moto, and on dynalite — an independent DynamoDB implementation, run as a real server.

dynalite is started once per test session (on first use; stopped at exit) and each test
gets its own table. A missing node or dynalite fails the test loudly: nothing is
skipped."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto import mock_aws
from statewright.aws.dynamodb_store import DynamoStore
from statewright.ports import Store

from tests import aws_limits
from tests.integration.aws.tables import create_table

aws_limits.install()  # every AWS client of these tests is made as strict as AWS

StoreFactory = Callable[[Path], AbstractContextManager[Store]]

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNALITE = REPO_ROOT / "node_modules" / ".bin" / "dynalite"
REGION = "us-east-1"
_FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class AtomicRequests:
    """A DynamoDB client that sends one request at a time.

    DynamoDB applies each request atomically — a conditional write checks and writes as
    one step. moto's in-memory backend checks, then writes, with no lock between, so two
    threads can both pass ``attribute_not_exists``. Serializing requests gives moto the
    atomicity the real service has; the store's own logic stays fully concurrent."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self._client, name)
        if not callable(operation):
            return operation

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return operation(*args, **kwargs)

        return atomic


@contextlib.contextmanager
def moto_store(tmp_path: Path) -> Iterator[Store]:
    with mock_aws(), aws_limits.strict_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, "statewright-contract")
        yield DynamoStore(AtomicRequests(client), "statewright-contract")  # type: ignore[arg-type]


class Dynalite:
    """One dynalite server on a free loopback port."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None or not DYNALITE.exists():
            raise RuntimeError(
                f"dynalite is needed for the store contract suite: node={node!r}, "
                f"{DYNALITE} {'exists' if DYNALITE.exists() else 'is missing'}; "
                "run `make install` (npm ci) to get it"
            )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [
                str(DYNALITE),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._wait_ready()
        atexit.register(self.stop)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"dynalite exited with {self.process.returncode}: {stderr}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dynalite did not listen on port {self.port} within 20 s")

    def client(self) -> Any:
        return boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=self.endpoint,
            config=Config(retries={"max_attempts": 2}),
            **_FAKE_CREDENTIALS,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_dynalite: Dynalite | None = None
_tables = itertools.count()


def dynalite_server() -> Dynalite:
    """The session's dynalite, started on first use."""
    global _dynalite  # one server per test process
    if _dynalite is None or _dynalite.process.poll() is not None:
        _dynalite = Dynalite()
    return _dynalite


@contextlib.contextmanager
def dynalite_store(tmp_path: Path) -> Iterator[Store]:
    aws_limits.install()  # before the client: botocore hooks a client when it is made
    server = dynalite_server()
    client = server.client()
    name = f"statewright-contract-{os.getpid()}-{next(_tables)}"
    create_table(client, name)
    try:
        yield DynamoStore(client, name)
    finally:
        client.delete_table(TableName=name)


def break_dynamodb_machine(store: DynamoStore, machine_id: str) -> None:
    """Overwrite a machine item's packed machine with bytes no version could read."""
    store._client.update_item(
        TableName=store._table,
        Key={"pk": {"S": f"MACHINE#{machine_id}"}, "sk": {"S": "MACHINE"}},
        UpdateExpression="SET m = :m",
        ExpressionAttributeValues={":m": {"B": b"\x01cut"}},
    )


AWS_BACKENDS: dict[str, StoreFactory] = {
    "dynamodb-moto": moto_store,
    "dynamodb-dynalite": dynalite_store,
}
