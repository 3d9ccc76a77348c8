"""What the DynamoDB store costs, how its history behaves past the inline bound, how it
meets DynamoDB's 400 KB item and keeps its page-token key, on DynamoDB under moto (as
strict as AWS through tests.aws_limits) and on dynalite (the contract suite covers the
rest)."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from statewright.aws.dynamodb_store import WRITE_UNIT_BYTES, DynamoStore
from statewright.aws.item_size import ITEM_MAX_BYTES, item_size
from statewright.errors import ItemTooLarge, VersionConflict
from statewright.model import HistoryEntry, Machine
from statewright.ports import Write

from tests.contract import test_due_index as due_index
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
    """A no-op event: one history entry, nothing else changes. Its source is random, as
    compressible as real entries' timestamps and actors, so pages hold tens of entries."""

    def decide(current: Machine) -> Write[None]:
        seq = current.history_seq + 1
        source = f"bus:{secrets.token_hex(12)}"
        return Write(
            result=None,
            machine=current.model_copy(update={"history_seq": seq}),
            history=[
                HistoryEntry(
                    seq=seq, kind="event", event="PING", epoch=1, state="INIT", source=source
                )
            ],
        )

    store.mutate(machine_id, decide)


PAGE_EVENTS = 45
"""Events that surely spill a page: about 40 entries of ``one_event`` fill one."""


def machine_items(store: DynamoStore) -> list[dict[str, Any]]:
    return [
        item
        for item in client_of(store).scan(TableName=store._table)["Items"]
        if item["sk"]["S"] == "MACHINE"
    ]


def pages(store: DynamoStore) -> list[dict[str, Any]]:
    items = client_of(store).scan(TableName=store._table)["Items"]
    return [it for it in items if it["sk"]["S"].startswith("HISTORY#")]


def all_history(store: DynamoStore, machine_id: str = "m-1", limit: int = 1000) -> list[int]:
    seen: list[int] = []
    token = None
    while True:
        page, token = store.history(machine_id, limit=limit, next_token=token)
        assert len(page) <= limit
        seen += [e.seq for e in page]
        if token is None:
            return seen


def test_an_event_costs_one_read_and_one_write_unit_and_history_spills_rarely(
    store: DynamoStore,
) -> None:
    create(store)
    calls = count_calls(store)
    events = 200
    for _ in range(events):
        one_event(store)
        # The machine item stays within one write unit: older entries spill to pages.
        (item,) = machine_items(store)
        assert item_size(item) <= WRITE_UNIT_BYTES
    spills = len(pages(store))
    del calls["Scan"]  # the test's own look at the table
    # A page is written only when the inline entries would pass the unit, and then holds
    # at least half a unit of them: dozens of entries, not one per event.
    assert calls["GetItem"] == events and calls["PutItem"] == events + spills
    assert 0 < spills <= events // 20
    assert set(calls) == {"GetItem", "PutItem"}
    assert all_history(store) == list(range(1, events + 2))


def test_history_pages_across_spilled_and_inline_entries(store: DynamoStore) -> None:
    create(store)
    for _ in range(150):
        one_event(store)
    assert len(pages(store)) >= 2
    for limit in (1, 9, 40):
        assert all_history(store, limit=limit) == list(range(1, 152))
    # From any point on, across page and inline boundaries alike.
    for after in (0, 1, 37, 70, 120, 150, 151):
        entries, more = store.history_after("m-1", limit=25, after_seq=after)
        expected = list(range(after + 1, 152))
        assert [e.seq for e in entries] == expected[:25] and more == (len(expected) > 25)


def test_a_page_left_by_a_write_that_lost_its_race_shows_its_entries_once(
    store: DynamoStore,
) -> None:
    """A page is put before the conditional write that trims the inline entries; when
    that write loses, the page stays, repeating entries that another page holds too."""
    create(store)
    for _ in range(150):
        one_event(store)
    entries, _ = store.history_after("m-1", limit=1000, after_seq=0)
    hist = machine_items(store)[0]["hist"]["S"]
    orphan = [e.model_dump(mode="json", exclude_none=True) for e in entries[20:90]]
    store._spill("m-1", hist, orphan)
    assert all_history(store, limit=7) == list(range(1, 152))


def test_an_update_by_a_store_that_has_not_seen_the_machine_reads_it_first(
    store: DynamoStore,
) -> None:
    create(store)
    one_event(store)
    other = DynamoStore(store._client, store._table)
    current = store.get("m-1")
    assert current is not None
    calls = count_calls(store)
    bumped = current.model_copy(update={"version": 3, "history_seq": 3})
    other.update(bumped, 2, [HistoryEntry(seq=3, kind="event", epoch=1, state="INIT")])
    assert calls["GetItem"] == 1 and calls["PutItem"] == 1
    assert all_history(store) == [1, 2, 3]
    # An outdated version is refused without spending a write.
    with pytest.raises(VersionConflict) as caught:
        DynamoStore(store._client, store._table).update(bumped, 2)
    assert caught.value.current == bumped
    assert calls["PutItem"] == 1


def test_items_of_the_layout_before_packing_are_read_and_rewritten_packed(
    store: DynamoStore,
) -> None:
    """Machine items as earlier versions wrote them (``doc`` and ``recent`` as JSON,
    one item per spilled entry) read as before, and their next write packs them."""
    old = Machine(id="m-1", spec="s", spec_digest="d", state="INIT", version=4, history_seq=4)
    entries = [
        HistoryEntry(seq=n, kind="event", event="PING", epoch=1, state="INIT") for n in (1, 2, 3, 4)
    ]
    as_json = [e.model_dump_json(exclude_none=True) for e in entries]
    key = {"pk": {"S": "MACHINE#m-1"}}
    put(
        store,
        {
            **key,
            "sk": {"S": "MACHINE"},
            "doc": {"S": old.model_dump_json(exclude={"version"})},
            "version": {"N": "4"},
            "gsi1pk": {"S": "s"},
            "gsi1sk": {"S": "INIT#m-1"},
            "hist": {"S": "h0"},
            "recent": {"L": [{"S": j} for j in as_json[2:]]},
        },
    )
    for n in (1, 2):
        put(store, {**key, "sk": {"S": f"HISTORY#h0#{n:010d}"}, "entry": {"S": as_json[n - 1]}})
    assert store.get("m-1") == old
    assert [m.id for m in store.list_machines()[0]] == ["m-1"]
    assert all_history(store, limit=3) == [1, 2, 3, 4]
    one_event(store)
    (item,) = machine_items(store)
    assert "m" in item and "doc" not in item and "recent" not in item
    assert all_history(store, limit=2) == [1, 2, 3, 4, 5]
    stored = store.get("m-1")
    assert stored is not None and stored.version == 5
    store.delete("m-1", 5)
    items = client_of(store).scan(TableName=store._table)["Items"]
    assert not [it for it in items if it["pk"]["S"] == "MACHINE#m-1"]


def due_key(store: DynamoStore) -> str | None:
    (item,) = machine_items(store)
    return item["gsi2sk"]["S"] if "gsi2sk" in item else None


def test_the_due_entry_moves_only_to_an_earlier_time(store: DynamoStore) -> None:
    """A key change in by_due is two index writes; a machine due later than its entry
    says keeps the entry, and the reconciler, which asks due_at of what it reads, still
    takes it only once it is due."""
    store.create(due_index.pending("m", not_before=due_index.EARLIER))
    assert due_key(store) == f"{due_index.EARLIER}#m"
    started = due_index.running("m", started_at=due_index.LATER)
    store.update(started.model_copy(update={"version": 2}), 1)
    assert due_key(store) == f"{due_index.EARLIER}#m"
    assert due_index.ids(store, until=due_index.EARLIER) == []
    assert due_index.ids(store, until=due_index.LATER) == ["m"]
    backoff = due_index.pending("m", not_before="2026-01-02T00:00:00.000Z")
    store.update(backoff.model_copy(update={"version": 3}), 2)
    assert due_key(store) == "2026-01-02T00:00:00.000Z#m"
    store.update(due_index.idle("m").model_copy(update={"version": 4}), 3)
    assert due_key(store) is None and due_index.ids(store) == []


def test_a_conflict_reports_the_stored_machine(store: DynamoStore) -> None:
    create(store)
    seen = store.get("m-1")
    assert seen is not None
    other = DynamoStore(store._client, store._table)
    one_event(other)  # another process writes behind this store's back
    stored = other.get("m-1")
    calls = count_calls(store)
    with pytest.raises(VersionConflict) as caught:
        store.update(seen.model_copy(update={"version": 2}), expected_version=1)
    assert caught.value.current == stored
    # moto returns the item with the failed write (ReturnValuesOnConditionCheckFailure);
    # dynalite ignores that option, so the store reads it once.
    assert calls["PutItem"] == 1 and calls["GetItem"] <= 1


def test_delete_leaves_no_history_behind(store: DynamoStore) -> None:
    create(store, "gone")
    create(store, "stays")
    for _ in range(2 * PAGE_EVENTS):
        one_event(store, "gone")
        one_event(store, "stays")
    machine = store.get("gone")
    assert machine is not None
    store.delete("gone", machine.version)
    items = client_of(store).scan(TableName=store._table)["Items"]
    assert not [i for i in items if i["pk"]["S"] == "MACHINE#gone"]
    assert len(store.history("stays", limit=1000)[0]) == 2 * PAGE_EVENTS + 1


def test_a_stale_cache_from_another_incarnation_costs_a_retry_not_a_wrong_history(
    store: DynamoStore,
) -> None:
    create(store)
    for _ in range(PAGE_EVENTS - 1):
        one_event(store)
    # Another process deletes and re-creates the machine behind this store's back.
    other = DynamoStore(store._client, store._table)
    machine = other.get("m-1")
    assert machine is not None
    other.delete("m-1", machine.version)
    create(other)
    for _ in range(PAGE_EVENTS - 1):
        one_event(other)
    for _ in range(3):
        one_event(store)
    entries, _ = store.history("m-1", limit=1000)
    assert [e.seq for e in entries] == list(range(1, PAGE_EVENTS + 4))
    assert [e.kind for e in entries][:1] == ["created"]


def test_with_a_history_retention_spilled_entries_expire_and_paging_skips_them(
    store: DynamoStore,
) -> None:
    now = [1_000_000.0]
    retaining = DynamoStore(
        store._client, store._table, history_retention_days=1, wall_clock=lambda: now[0]
    )
    create(retaining)
    for _ in range(3 * PAGE_EVENTS):  # spills the oldest entries on day 0
        one_event(retaining)
    day0 = retaining.history("m-1", limit=1000)[0]
    assert [e.seq for e in day0] == list(range(1, 3 * PAGE_EVENTS + 2))

    now[0] += 86400 + 1  # a day later: what spilled on day 0 has expired
    for _ in range(3 * PAGE_EVENTS):
        one_event(retaining)
    seen: list[int] = []
    token = None
    while True:  # small pages, so some pages start among expired items
        page, token = retaining.history("m-1", limit=7, next_token=token)
        seen += [e.seq for e in page]
        if token is None:
            break
    everything = list(range(1, 6 * PAGE_EVENTS + 2))
    # Nothing after the expired day-0 spills is missing, and the newest are all there.
    assert seen == everything[everything.index(seen[0]) :]
    assert seen[0] > 1 and seen[-1] == everything[-1]
    assert len(seen) >= 3 * PAGE_EVENTS


def test_without_a_history_retention_spilled_entries_never_expire(store: DynamoStore) -> None:
    create(store)
    for _ in range(3 * PAGE_EVENTS):
        one_event(store)
    items = client_of(store).scan(TableName=store._table)["Items"]
    spilled = [it for it in items if it["sk"]["S"].startswith("HISTORY#")]
    assert spilled and not any("expires_at" in it for it in spilled)


# ---- DynamoDB's 400 KB item and the page-token key item ----------------------------------


def big_machine(size: int, version: int = 1) -> Machine:
    """A machine whose item takes about ``size`` bytes: its metadata is random text,
    which compression cannot shrink below 3/4 (base64), so ``size`` is that much of it."""
    return Machine(
        id="m-1",
        spec="s",
        spec_digest="d",
        state="INIT",
        version=version,
        metadata={"k": secrets.token_urlsafe(size)[: size * 4 // 3]},
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
    small = big_machine(10)
    store.create(small, [HistoryEntry(seq=1, kind="created", epoch=1, state="INIT")])
    with pytest.raises(ItemTooLarge):
        store.update(big_machine(450_000, version=2), 1)
    stored = store.get("m-1")
    assert stored is not None and stored.version == 1 and stored.metadata == small.metadata


def test_an_item_is_measured_packed_so_what_compresses_well_is_stored(
    store: DynamoStore,
) -> None:
    """DynamoDB's limit is on the stored item, which holds the machine compressed:
    500 KB of one repeated letter is a few hundred bytes there (the engine's own limits,
    the same in every mode, keep metadata and outputs far smaller anyway)."""
    roomy = Machine(
        id="m-1", spec="s", spec_digest="d", state="INIT", version=1, metadata={"k": "x" * 500_000}
    )
    store.create(roomy)
    (item,) = machine_items(store)
    assert item_size(item) < WRITE_UNIT_BYTES
    assert store.get("m-1") == roomy


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


# ---- large fields in a side item ----------------------------------------------------------


def side_items(store: DynamoStore) -> list[str]:
    items = client_of(store).scan(TableName=store._table)["Items"]
    return [it["sk"]["S"] for it in items if it["sk"]["S"].startswith("DATA#")]


def with_metadata(machine: Machine, size: int, version: int) -> Machine:
    """``machine`` with ``size`` bytes of metadata that compression cannot hide."""
    metadata = {f"k{i}": secrets.token_hex(32) for i in range(size // 80)}
    return machine.model_copy(update={"metadata": metadata, "version": version})


def test_large_metadata_lives_in_a_side_item_written_only_when_it_changes(
    store: DynamoStore,
) -> None:
    base = Machine(id="m-1", spec="s", spec_digest="d", state="INIT", version=1, history_seq=1)
    big = with_metadata(base, 8000, 1)
    store.create(big, [HistoryEntry(seq=1, kind="created", epoch=1, state="INIT")])
    (first,) = side_items(store)
    calls = count_calls(store)
    for _ in range(10):
        one_event(store)
        (item,) = machine_items(store)
        assert item_size(item) <= WRITE_UNIT_BYTES  # the event writes one unit
    del calls["Scan"]
    # Each event: the machine and its side item read, the machine item written.
    assert calls == {"GetItem": 20, "PutItem": 10}
    assert side_items(store) == [first]
    current = store.get("m-1")
    assert current is not None and current.metadata == big.metadata
    changed = with_metadata(current, 8000, current.version + 1)
    store.update(changed, current.version)
    assert store.get("m-1") == changed
    (second,) = side_items(store)  # a new side item; the one before is gone
    assert second != first
    # Back under the threshold: the fields move inline and the side item goes.
    small = changed.model_copy(update={"metadata": {"k": "v"}, "version": changed.version + 1})
    store.update(small, changed.version)
    assert store.get("m-1") == small and side_items(store) == []
    assert [e.seq for e in store.history("m-1")[0]] == list(range(1, 12))


def test_a_listing_that_met_an_item_before_its_side_item_changed_reads_the_machine_again(
    store: DynamoStore,
) -> None:
    base = Machine(id="m-1", spec="s", spec_digest="d", state="INIT", version=1)
    store.create(with_metadata(base, 4000, 1))
    (old_item,) = machine_items(store)
    changed = with_metadata(base, 4000, 2)
    store.update(changed, 1)
    assert store._listed(old_item) == changed
    assert [m.metadata for m in store.list_machines()[0]] == [changed.metadata]
    assert [m.id for m in store.due_machines()] == []


def test_a_write_that_loses_its_race_leaves_a_side_item_the_delete_removes(
    store: DynamoStore,
) -> None:
    base = Machine(id="m-1", spec="s", spec_digest="d", state="INIT", version=1)
    store.create(with_metadata(base, 4000, 1))
    seen = store.get("m-1")
    assert seen is not None
    other = DynamoStore(store._client, store._table)
    winner = with_metadata(base, 4000, 2)
    other.update(winner, 1)
    with pytest.raises(VersionConflict) as caught:
        store.update(with_metadata(base, 4000, 2), 1)
    assert caught.value.current == winner
    assert store.get("m-1") == winner and len(side_items(store)) == 2
    store.delete("m-1", 2)
    items = client_of(store).scan(TableName=store._table)["Items"]
    assert not [it for it in items if it["pk"]["S"] == "MACHINE#m-1"]


def test_a_read_that_keeps_meeting_replaced_side_items_reads_again_until_it_gets_one(
    store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between this reader's two reads (machine item, then side item) another writer
    # replaces the side item, five times running: more than any fixed retry count.
    base = Machine(id="m-1", spec="s", spec_digest="d", state="INIT", version=1)
    store.create(with_metadata(base, 4000, 1))
    writer = DynamoStore(store._client, store._table)
    latest = [with_metadata(base, 4000, 1)]
    read_item = store._machine_item_of

    def read_then_write_between(machine_id: str) -> Any:
        item = read_item(machine_id)
        if latest[-1].version < 6:
            new = with_metadata(base, 4000, latest[-1].version + 1)
            writer.update(new, latest[-1].version)
            latest.append(new)
        return item

    monkeypatch.setattr(store, "_machine_item_of", read_then_write_between)
    assert store.get("m-1") == latest[-1]
    assert latest[-1].version == 6


def test_a_side_item_missing_under_the_version_that_names_it_is_a_damaged_item(
    store: DynamoStore,
) -> None:
    base = Machine(id="m-1", spec="s", spec_digest="d", state="INIT", version=1)
    store.create(with_metadata(base, 4000, 1))
    (side,) = side_items(store)
    client_of(store).delete_item(
        TableName=store._table, Key={"pk": {"S": "MACHINE#m-1"}, "sk": {"S": side}}
    )
    fresh = DynamoStore(store._client, store._table)
    with pytest.raises(ValueError, match="names a side item that is missing"):
        fresh.get("m-1")


def test_a_listing_reads_the_side_items_of_its_machines_in_one_batch(
    store: DynamoStore,
) -> None:
    machines = [
        with_metadata(Machine(id=f"m-{i}", spec="s", spec_digest="d", state="INIT"), 3000, 1)
        for i in range(5)
    ]
    for machine in machines:
        store.create(machine)
    store.create(Machine(id="small", spec="s", spec_digest="d", state="INIT", version=1))
    store.page_token_key()  # made once per deployment, not part of a listing's reads
    calls = count_calls(store)
    page, _ = store.list_machines(spec="s", limit=10)
    assert {m.id: m for m in page if m.id != "small"} == {m.id: m for m in machines}
    # The index page, the machine items, their side items: no read per machine.
    assert calls == {"Query": 1, "BatchGetItem": 2}
