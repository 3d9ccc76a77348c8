"""Every Store the contract suite runs against. Each backend module lists factories:
context managers that yield a fresh, empty Store. A backend whose dependency is missing
must fail loudly, never skip: the suite's point is that every store passes."""

from __future__ import annotations

import pytest
from statewright.aws.dynamodb_store import DynamoStore
from statewright.local.sqlite_store import SqliteStore
from statewright.ports import Store

from tests.contract.backends_aws import AWS_BACKENDS, break_dynamodb_machine
from tests.contract.backends_local import LOCAL_BACKENDS, break_sqlite_machine

BACKENDS = {**LOCAL_BACKENDS, **AWS_BACKENDS}


def break_machine(store: Store, machine_id: str) -> None:
    """Damage a stored machine behind the store's back (a bad migration, a hand edit)."""
    if isinstance(store, SqliteStore):
        break_sqlite_machine(store, machine_id)
    elif isinstance(store, DynamoStore):
        break_dynamodb_machine(store, machine_id)
    else:
        raise AssertionError(f"no way to break a machine of {type(store).__name__}")


def backend_params() -> list[object]:
    """The backends' names as pytest parameters; dynalite's carry the ``dynalite`` mark
    (it needs node and the dynalite package), so ``-m "not dynalite"`` leaves them out."""
    return [
        pytest.param(name, marks=pytest.mark.dynalite) if "dynalite" in name else name
        for name in sorted(BACKENDS)
    ]
