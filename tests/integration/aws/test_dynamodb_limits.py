"""DynamoDB's 400 KB item and the page-token key item, on DynamoDB under moto (made as
strict as AWS by tests.aws_limits) and on dynalite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from statewright.aws.dynamodb_store import DynamoStore
from statewright.aws.item_size import ITEM_MAX_BYTES, item_size
from statewright.errors import ItemTooLarge
from statewright.model import HistoryEntry, Machine

from tests.contract.backends_aws import dynalite_store, moto_store
from tests.integration.aws.test_dynamodb_store import client_of


@pytest.fixture(params=["moto", "dynalite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DynamoStore]:
    factory = moto_store if request.param == "moto" else dynalite_store
    with factory(tmp_path) as fresh:
        assert isinstance(fresh, DynamoStore)
        yield fresh


def big_machine(size: int, version: int = 1) -> Machine:
    return Machine(
        id="m-1",
        spec="s",
        spec_digest="d",
        state="INIT",
        version=version,
        metadata={"k": "x" * size},
    )


def put(store: DynamoStore, item: dict[str, Any]) -> None:
    client_of(store).put_item(TableName=store._table, Item=item)


def test_an_item_of_exactly_400_kb_is_stored_and_one_byte_more_is_refused(
    store: DynamoStore,
) -> None:
    base = {"pk": {"S": "X#1"}, "sk": {"S": "X"}, "v": {"S": ""}}
    fill = ITEM_MAX_BYTES - item_size(base)
    put(store, {**base, "v": {"S": "y" * fill}})
    assert item_size({**base, "v": {"S": "y" * fill}}) == ITEM_MAX_BYTES
    with pytest.raises(ClientError) as refused:
        put(store, {**base, "v": {"S": "y" * (fill + 1)}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_an_item_of_300_kb_can_be_overwritten_with_another(store: DynamoStore) -> None:
    """moto counts the old and the new value of an overwritten attribute together."""
    store.create(big_machine(300_000))
    store.update(big_machine(300_001, version=2), 1)
    stored = store.get("m-1")
    assert stored is not None and stored.version == 2


def test_a_machine_too_large_to_create_is_item_too_large_and_not_stored(
    store: DynamoStore,
) -> None:
    with pytest.raises(ItemTooLarge) as refused:
        store.create(big_machine(500_000))
    assert refused.value.size > ITEM_MAX_BYTES == refused.value.limit
    assert store.get("m-1") is None


def test_an_update_too_large_is_item_too_large_and_changes_nothing(store: DynamoStore) -> None:
    store.create(big_machine(10), [HistoryEntry(seq=1, kind="created", epoch=1, state="INIT")])
    with pytest.raises(ItemTooLarge):
        store.update(big_machine(450_000, version=2), 1)
    stored = store.get("m-1")
    assert stored is not None and stored.version == 1 and stored.metadata == {"k": "x" * 10}


def test_the_page_token_key_is_made_once_and_shared_by_every_store_on_the_table(
    store: DynamoStore,
) -> None:
    others = [DynamoStore(store._client, store._table) for _ in range(4)]
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda s=s: keys.append(s.page_token_key())) for s in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert store.page_token_key() == keys[0]
    for i in range(3):
        store.create(Machine(id=f"m-{i}", spec="s", spec_digest="d", state="INIT", version=1))
    _page, token = store.list_machines(limit=1)
    assert others[0].list_machines(limit=1, next_token=token)[0]


def test_unprocessed_keys_are_fetched_again_after_a_growing_pause(store: DynamoStore) -> None:
    for i in range(3):
        store.create(Machine(id=f"m-{i}", spec="s", spec_digest="d", state="INIT", version=1))
    client = client_of(store)
    pauses: list[float] = []
    store._sleep = pauses.append
    calls = {"n": 0}

    def throttle(parsed: dict[str, Any], **_: Any) -> None:
        # The first two answers hand back every key but the first as unprocessed.
        calls["n"] += 1
        if calls["n"] <= 2:
            table = next(iter(parsed["Responses"]))
            found = parsed["Responses"][table]
            if len(found) > 1:
                parsed["Responses"][table] = found[:1]
                keys = [{"pk": f["pk"], "sk": f["sk"]} for f in found[1:]]
                parsed["UnprocessedKeys"] = {table: {"Keys": keys}}

    client.meta.events.register("after-call.dynamodb.BatchGetItem", throttle)
    page, _ = store.list_machines(limit=10)
    assert sorted(m.id for m in page) == ["m-0", "m-1", "m-2"]
    assert len(pauses) == 2 and pauses[1] > pauses[0] > 0
