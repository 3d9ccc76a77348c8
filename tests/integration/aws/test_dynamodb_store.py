"""What the DynamoDB store costs, how its history behaves past the inline bound, how it
meets DynamoDB's 400 KB item and keeps its page-token key, on DynamoDB under moto (as
strict as AWS through tests.aws_limits) and on dynalite (the contract suite covers the
rest)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from statewright.aws.dynamodb_store import INLINE_HISTORY, DynamoStore
from statewright.aws.item_size import ITEM_MAX_BYTES, item_size
from statewright.errors import ItemTooLarge, VersionConflict
from statewright.model import HistoryEntry, Machine
from statewright.ports import Write

from tests.contract.backends_aws import dynalite_store, moto_store


@pytest.fixture(params=["moto", "dynalite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DynamoStore]:
    factory = moto_store if request.param == "moto" else dynalite_store
    with factory(tmp_path) as fresh:
        assert isinstance(fresh, DynamoStore)
        yield fresh


def client_of(store: DynamoStore) -> Any:
    client = store._client
    return getattr(client, "_client", client)  # moto's is wrapped in AtomicRequests


def count_calls(store: DynamoStore) -> Counter[str]:
    calls: Counter[str] = Counter()

    def record(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client_of(store).meta.events.register("before-call.dynamodb", record)
    return calls


def create(store: DynamoStore, machine_id: str = "m-1") -> None:
    store.create(
        Machine(id=machine_id, spec="s", spec_digest="d", state="INIT", version=1, history_seq=1),
        [HistoryEntry(seq=1, kind="created", epoch=1, state="INIT")],
    )


def one_event(store: DynamoStore, machine_id: str = "m-1") -> None:
    """A no-op event: one history entry, nothing else changes."""

    def decide(current: Machine) -> Write[None]:
        seq = current.history_seq + 1
        return Write(
            result=None,
            machine=current.model_copy(update={"history_seq": seq}),
            history=[HistoryEntry(seq=seq, kind="event", event="PING", epoch=1, state="INIT")],
        )

    store.mutate(machine_id, decide)


def test_an_event_costs_one_read_and_one_write_and_history_spills_rarely(
    store: DynamoStore,
) -> None:
    create(store)
    calls = count_calls(store)
    events = 5 * INLINE_HISTORY
    for _ in range(events):
        one_event(store)
    assert calls["GetItem"] == events and calls["UpdateItem"] == events
    # Once per INLINE_HISTORY events the inline entries move out, in one batch.
    assert calls["BatchWriteItem"] <= events // INLINE_HISTORY
    assert set(calls) == {"GetItem", "UpdateItem", "BatchWriteItem"}
    entries, token = store.history("m-1", limit=1000)
    assert [e.seq for e in entries] == list(range(1, events + 2)) and token is None


def test_history_pages_across_spilled_and_inline_entries(store: DynamoStore) -> None:
    create(store)
    for _ in range(2 * INLINE_HISTORY + 7):
        one_event(store)
    seen: list[int] = []
    token = None
    while True:
        page, token = store.history("m-1", limit=9, next_token=token)
        assert len(page) <= 9
        seen += [e.seq for e in page]
        if token is None:
            break
    assert seen == list(range(1, 2 * INLINE_HISTORY + 9))


def test_a_conflict_reports_the_stored_machine(store: DynamoStore) -> None:
    create(store)
    one_event(store)
    stored = store.get("m-1")
    assert stored is not None
    calls = count_calls(store)
    with pytest.raises(VersionConflict) as caught:
        store.update(stored.model_copy(update={"version": 9}), expected_version=1)
    assert caught.value.current == stored
    # moto returns the item with the failed write (ReturnValuesOnConditionCheckFailure);
    # dynalite ignores that option, so the store reads it once.
    assert calls["UpdateItem"] == 1 and calls["GetItem"] <= 1


def test_delete_leaves_no_history_behind(store: DynamoStore) -> None:
    create(store, "gone")
    create(store, "stays")
    for _ in range(2 * INLINE_HISTORY):
        one_event(store, "gone")
        one_event(store, "stays")
    machine = store.get("gone")
    assert machine is not None
    store.delete("gone", machine.version)
    items = client_of(store).scan(TableName=store._table)["Items"]
    assert not [i for i in items if i["pk"]["S"] == "MACHINE#gone"]
    assert len(store.history("stays", limit=1000)[0]) == 2 * INLINE_HISTORY + 1


def test_a_stale_cache_from_another_incarnation_costs_a_retry_not_a_wrong_history(
    store: DynamoStore,
) -> None:
    create(store)
    for _ in range(INLINE_HISTORY - 1):
        one_event(store)
    # Another process deletes and re-creates the machine behind this store's back.
    other = DynamoStore(store._client, store._table)
    machine = other.get("m-1")
    assert machine is not None
    other.delete("m-1", machine.version)
    create(other)
    for _ in range(INLINE_HISTORY - 1):
        one_event(other)
    for _ in range(3):
        one_event(store)
    entries, _ = store.history("m-1", limit=1000)
    assert [e.seq for e in entries] == list(range(1, INLINE_HISTORY + 4))
    assert [e.kind for e in entries][:1] == ["created"]


def test_with_a_history_retention_spilled_entries_expire_and_paging_skips_them(
    store: DynamoStore,
) -> None:
    now = [1_000_000.0]
    retaining = DynamoStore(
        store._client, store._table, history_retention_days=1, wall_clock=lambda: now[0]
    )
    create(retaining)
    for _ in range(3 * INLINE_HISTORY):  # spills the oldest entries on day 0
        one_event(retaining)
    day0 = retaining.history("m-1", limit=1000)[0]
    assert [e.seq for e in day0] == list(range(1, 3 * INLINE_HISTORY + 2))

    now[0] += 86400 + 1  # a day later: what spilled on day 0 has expired
    for _ in range(3 * INLINE_HISTORY):
        one_event(retaining)
    seen: list[int] = []
    token = None
    while True:  # small pages, so some pages start among expired items
        page, token = retaining.history("m-1", limit=7, next_token=token)
        seen += [e.seq for e in page]
        if token is None:
            break
    everything = list(range(1, 6 * INLINE_HISTORY + 2))
    # Nothing after the expired day-0 spills is missing, and the newest are all there.
    assert seen == everything[everything.index(seen[0]) :]
    assert seen[0] > 1 and seen[-1] == everything[-1]
    assert len(seen) >= 3 * INLINE_HISTORY


def test_without_a_history_retention_spilled_entries_never_expire(store: DynamoStore) -> None:
    create(store)
    for _ in range(3 * INLINE_HISTORY):
        one_event(store)
    items = client_of(store).scan(TableName=store._table)["Items"]
    spilled = [it for it in items if it["sk"]["S"].startswith("HISTORY#")]
    assert spilled and not any("expires_at" in it for it in spilled)


# ---- DynamoDB's 400 KB item and the page-token key item ----------------------------------


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
