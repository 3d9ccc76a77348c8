"""The store contract (docs/architecture.md#the-store-contract): every Store behaves the
same, whatever its backend.
Written against the Store API only; the ``store`` fixture runs each test on every
backend of tests.contract.backends.BACKENDS."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import pytest
from statewright.errors import (
    Conflict,
    InvalidRequest,
    MachineExists,
    MachineNotFound,
    VersionConflict,
)
from statewright.model import HistoryEntry, Machine, TaskRecord
from statewright.ports import IdempotencyRecord, Store, Write
from statewright.spec.models import Spec

from tests.contract.backends import break_machine

NOW = "2026-01-02T03:04:05.000Z"


def machine(
    machine_id: str = "m-1", *, spec: str = "preview-env", state: str = "INIT", **kw: object
) -> Machine:
    fields: dict[str, object] = {"version": 1, "created_at": NOW, "updated_at": NOW, **kw}
    return Machine.model_validate(
        {
            "id": machine_id,
            "spec": spec,
            "spec_digest": "sha256:" + "0" * 64,
            "state": state,
            **fields,
        }
    )


def entry(seq: int, kind: str = "event", **kw: object) -> HistoryEntry:
    return HistoryEntry(seq=seq, at=NOW, kind=kind, epoch=1, state="INIT", **kw)  # type: ignore[arg-type]


def rich_machine() -> Machine:
    return machine(
        "rich.machine_1",
        state="PROVISION",
        previous_state="INIT",
        status="failed",
        epoch=3,
        tasks={
            "db-setup": TaskRecord(
                executor="lambda",
                status="failed",
                attempt=2,
                started_at=NOW,
                finished_at=NOW,
                error="Boom: it broke",
                output={"url": "https://x.example", "n": [1, 2, {"deep": True}]},
                state="PROVISION",
                epoch=3,
                run_id="run-7",
                not_before=NOW,
            ),
            "old": TaskRecord(
                executor="terraform", status="succeeded", attempt=1, state="INIT", epoch=1
            ),
        },
        metadata={"s": "text ünïcode", "i": 7, "f": 1.5, "b": True, "n": None},
        published={"NEXT": 2},
        applied={"NEXT": 2},
        history_seq=9,
    )


# ---- get / create ---------------------------------------------------------------------


def test_get_of_an_unknown_machine_is_none(store: Store) -> None:
    assert store.get("nobody") is None


def test_create_then_get_round_trips_every_field(store: Store) -> None:
    original = rich_machine()
    store.create(original)
    assert store.get(original.id) == original


def test_create_refuses_a_taken_id_and_keeps_the_first(store: Store) -> None:
    store.create(machine(metadata={"who": "first"}))
    with pytest.raises(MachineExists):
        store.create(machine(metadata={"who": "second"}))
    stored = store.get("m-1")
    assert stored is not None and stored.metadata == {"who": "first"}


def test_concurrent_creates_of_one_id_have_one_winner(store: Store) -> None:
    wins: list[int] = []
    losses: list[int] = []
    barrier = threading.Barrier(6)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            store.create(machine(metadata={"n": n}))
            wins.append(n)
        except MachineExists:
            losses.append(n)

    run_threads(attempt, 6)
    assert len(wins) == 1 and len(losses) == 5
    stored = store.get("m-1")
    assert stored is not None and stored.metadata == {"n": wins[0]}


# ---- update / delete ------------------------------------------------------------------


def test_update_with_the_expected_version_replaces_the_machine(store: Store) -> None:
    store.create(machine())
    changed = machine(state="RUN", version=2, metadata={"k": "v"})
    store.update(changed, expected_version=1)
    assert store.get("m-1") == changed


def test_update_with_another_version_raises_and_changes_nothing(store: Store) -> None:
    store.create(machine(metadata={"k": "original"}))
    store.update(machine(version=2, metadata={"k": "second"}), expected_version=1)
    with pytest.raises(VersionConflict) as caught:
        store.update(machine(version=2, metadata={"k": "lost"}), expected_version=1)
    stored = store.get("m-1")
    assert stored is not None and stored.version == 2 and stored.metadata == {"k": "second"}
    # When a backend hands back the item it found, it is the stored one.
    assert caught.value.current is None or caught.value.current == stored


def test_update_of_a_missing_machine_is_a_conflict_not_a_create(store: Store) -> None:
    with pytest.raises(VersionConflict):
        store.update(machine(version=2), expected_version=1)
    assert store.get("m-1") is None


def test_delete_with_the_expected_version_removes_machine_and_history(store: Store) -> None:
    store.create(machine(), [entry(1, "created")])
    store.update(machine(version=2), 1, [entry(2)])
    store.delete("m-1", expected_version=2)
    assert store.get("m-1") is None
    assert store.history("m-1") == ([], None)


def test_delete_with_another_version_raises_and_keeps_the_machine(store: Store) -> None:
    store.create(machine())
    with pytest.raises(VersionConflict):
        store.delete("m-1", expected_version=5)
    assert store.get("m-1") is not None


def test_delete_of_a_missing_machine_is_a_conflict(store: Store) -> None:
    with pytest.raises(VersionConflict):
        store.delete("m-1", expected_version=1)


def test_an_id_created_again_after_deletion_starts_with_fresh_history(store: Store) -> None:
    store.create(machine(), [entry(1, "created"), entry(2)])
    store.delete("m-1", expected_version=1)
    store.create(machine(), [entry(1, "created")])
    entries, _ = store.history("m-1")
    assert [(e.seq, e.kind) for e in entries] == [(1, "created")]


# ---- mutate: the optimistic-concurrency protocol --------------------------------------


def test_mutate_writes_the_decision_with_the_next_version(store: Store) -> None:
    store.create(machine(), [entry(1, "created")])

    def decide(current: Machine) -> Write[str]:
        new = current.model_copy(update={"state": "RUN", "history_seq": 2})
        return Write(result="done", machine=new, history=[entry(2, "transition")])

    assert store.mutate("m-1", decide) == "done"
    stored = store.get("m-1")
    assert stored is not None and stored.state == "RUN" and stored.version == 2
    entries, _ = store.history("m-1")
    assert [e.kind for e in entries] == ["created", "transition"]


def test_mutate_without_a_machine_writes_nothing(store: Store) -> None:
    store.create(machine())
    assert store.mutate("m-1", lambda current: Write(result=current.version)) == 1
    stored = store.get("m-1")
    assert stored is not None and stored.version == 1


def test_mutate_can_delete(store: Store) -> None:
    store.create(machine())
    store.mutate("m-1", lambda current: Write(result=None, delete=True))
    assert store.get("m-1") is None


def test_mutate_of_a_missing_machine_raises_machine_not_found(store: Store) -> None:
    with pytest.raises(MachineNotFound):
        store.mutate("ghost", lambda current: Write(result=None))


def test_mutate_decides_first_on_a_current_seed_without_reading(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(machine())
    seed = store.get("m-1")
    assert seed is not None
    seen: list[int] = []
    reads: list[str] = []
    get = store.get

    def counting_get(machine_id: str) -> Machine | None:
        reads.append(machine_id)
        return get(machine_id)

    def decide(current: Machine) -> Write[None]:
        seen.append(current.version)
        return Write(result=None, machine=current.model_copy(update={"state": "RUN"}))

    monkeypatch.setattr(store, "get", counting_get)
    store.mutate("m-1", decide, seed=seed)
    assert (seen, reads) == ([1], [])
    stored = store.get("m-1")
    assert stored is not None and stored.state == "RUN" and stored.version == 2


def test_mutate_with_an_outdated_seed_decides_again_on_the_stored_machine(store: Store) -> None:
    store.create(machine())
    outdated = store.get("m-1")
    assert outdated is not None
    store.update(outdated.model_copy(update={"version": 2, "state": "RUN"}), 1)
    seen: list[tuple[int, str]] = []

    def decide(current: Machine) -> Write[None]:
        seen.append((current.version, current.state))
        return Write(result=None, machine=current.model_copy(update={"epoch": 9}))

    store.mutate("m-1", decide, seed=outdated)
    stored = store.get("m-1")
    assert seen == [(1, "INIT"), (2, "RUN")]
    assert stored is not None and (stored.version, stored.state, stored.epoch) == (3, "RUN", 9)


@pytest.mark.parametrize("padding", [0, 4000], ids=["small", "large-metadata"])
def test_concurrent_mutations_lose_no_update(store: Store, padding: int) -> None:
    # With large metadata every write changes a large field (a DynamoDB side item each).
    store.create(machine(metadata={"counter": 0, "padding": "p" * padding}))
    threads, increments = 8, 10

    def bump(current: Machine) -> Write[None]:
        value = current.metadata["counter"]
        assert isinstance(value, int)
        metadata = {**current.metadata, "counter": value + 1}
        return Write(result=None, machine=current.model_copy(update={"metadata": metadata}))

    def worker(_: int) -> None:
        for _ in range(increments):
            store.mutate("m-1", bump)

    run_threads(worker, threads)
    stored = store.get("m-1")
    assert stored is not None
    assert stored.metadata["counter"] == threads * increments
    assert stored.version == 1 + threads * increments


def test_a_conflict_that_never_ends_raises_conflict_at_the_deadline(store: Store) -> None:
    store.create(machine(metadata={"n": 0}))
    store.deadline_seconds = 0.3
    attempts = 0

    def decide(current: Machine) -> Write[None]:
        nonlocal attempts
        attempts += 1
        # Another writer always gets in between this read and this write.
        latest = store.get("m-1")
        assert latest is not None
        store.update(latest.model_copy(update={"version": latest.version + 1}), latest.version)
        return Write(result=None, machine=current)

    started = time.monotonic()
    with pytest.raises(Conflict) as caught:
        store.mutate("m-1", decide)
    assert caught.value.retry_after_seconds >= 1
    assert attempts >= 2  # it did re-read and retry
    assert time.monotonic() - started < 5


# ---- listing --------------------------------------------------------------------------


def seed_listing(store: Store) -> None:
    for i in range(7):
        store.create(machine(f"a-{i}", spec="alpha", state="RUN" if i % 2 else "INIT"))
    for i in range(4):
        store.create(machine(f"b-{i}", spec="beta", state="RUN"))


def collect(store: Store, limit: int, **filters: str) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    for _ in range(100):
        page, token = store.list_machines(limit=limit, next_token=token, **filters)  # type: ignore[arg-type]
        assert len(page) <= limit
        ids.extend(m.id for m in page)
        if token is None:
            return ids
    raise AssertionError("pagination never ended")


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_listing_pages_through_every_machine_exactly_once(store: Store, limit: int) -> None:
    seed_listing(store)
    ids = collect(store, limit)
    assert sorted(ids) == sorted([f"a-{i}" for i in range(7)] + [f"b-{i}" for i in range(4)])
    assert len(ids) == len(set(ids))


def test_listing_filters_by_spec_state_and_both(store: Store) -> None:
    seed_listing(store)
    assert sorted(collect(store, 2, spec="beta")) == [f"b-{i}" for i in range(4)]
    assert sorted(collect(store, 2, state="INIT")) == ["a-0", "a-2", "a-4", "a-6"]
    assert sorted(collect(store, 2, spec="alpha", state="RUN")) == ["a-1", "a-3", "a-5"]
    assert collect(store, 2, spec="gamma") == []


def test_listing_follows_state_changes_and_deletions(store: Store) -> None:
    seed_listing(store)
    store.update(machine("a-0", spec="alpha", state="RUN", version=2), 1)
    store.delete("a-1", 1)
    assert sorted(collect(store, 5, spec="alpha", state="RUN")) == ["a-0", "a-3", "a-5"]
    page, _ = store.list_machines(spec="alpha", state="RUN", limit=10)
    assert {m.id: m.version for m in page}["a-0"] == 2


def test_an_empty_store_lists_nothing(store: Store) -> None:
    assert store.list_machines() == ([], None)


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_a_machine_that_cannot_be_read_is_left_out_of_listings_and_counted(
    store: Store, limit: int
) -> None:
    seed_listing(store)
    break_machine(store, "a-2")
    break_machine(store, "b-1")
    ids = collect(store, limit)
    expected = [f"a-{i}" for i in range(7) if i != 2] + [f"b-{i}" for i in range(4) if i != 1]
    assert sorted(ids) == sorted(expected)  # everything else, every page
    assert store.unreadable_machines == 2
    assert sorted(collect(store, limit, spec="alpha", state="INIT")) == ["a-0", "a-4", "a-6"]


def test_a_forged_next_token_is_an_invalid_request(store: Store) -> None:
    seed_listing(store)
    with pytest.raises(InvalidRequest):
        store.list_machines(next_token="not a token!")


# ---- history --------------------------------------------------------------------------


def test_history_is_oldest_first_and_pages(store: Store) -> None:
    store.create(machine(), [entry(1, "created")])
    version = 1
    for seq in range(2, 26, 2):  # two entries per write
        store.update(
            machine(version=version + 1), version, [entry(seq), entry(seq + 1, "transition")]
        )
        version += 1
    seqs, pages = page_history(store, "m-1", limit=10)
    assert seqs == list(range(1, 26))
    assert pages == 3


def page_history(store: Store, machine_id: str, limit: int) -> tuple[list[int], int]:
    """Every history entry's seq, following next_token, and how many pages it took."""
    seqs: list[int] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = store.history(machine_id, limit=limit, next_token=token)
        pages += 1
        seqs.extend(e.seq for e in page)
        if token is None:
            return seqs, pages


def test_history_entries_round_trip(store: Store) -> None:
    written = HistoryEntry(
        seq=1,
        at=NOW,
        kind="task_finished",
        epoch=4,
        state="PROVISION",
        task="db-setup",
        attempt=2,
        status="failed",
        error="Timeout: took too long",
        source="statewright",
    )
    store.create(machine(), [written])
    assert store.history("m-1") == ([written], None)


def test_history_of_an_unknown_machine_is_empty(store: Store) -> None:
    assert store.history("nobody") == ([], None)


def _digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()[:16]


def long_history(store: Store, writes: int) -> int:
    """``writes`` updates of two entries each, with distinct sources (real entries differ
    in their times and actors): enough to make a DynamoDB store spill pages. Returns the
    last sequence number."""
    store.create(machine(), [entry(1, "created")])
    for version in range(1, writes + 1):
        seq = 2 * version
        store.update(
            machine(version=version + 1, history_seq=seq + 1),
            version,
            [entry(seq, source=f"bus:{_digest(seq)}"), entry(seq + 1, "transition")],
        )
    return 2 * writes + 1


def test_a_long_history_reads_back_in_order_from_any_point(store: Store) -> None:
    last = long_history(store, 120)
    for limit in (7, 100):
        assert page_history(store, "m-1", limit=limit)[0] == list(range(1, last + 1))
    for after in (0, 1, 50, 99, 100, 200, last - 1, last):
        entries, more = store.history_after("m-1", limit=30, after_seq=after)
        expected = list(range(after + 1, last + 1))
        assert [e.seq for e in entries] == expected[:30] and more == (len(expected) > 30)


def test_delete_removes_a_long_history_and_a_new_machine_of_the_id_starts_fresh(
    store: Store,
) -> None:
    long_history(store, 120)
    store.delete("m-1", expected_version=121)
    assert store.history("m-1") == ([], None)
    store.create(machine(), [entry(1, "created")])
    assert [e.seq for e in store.history("m-1")[0]] == [1]


def test_a_machine_with_large_metadata_and_outputs_round_trips(store: Store) -> None:
    """Metadata and outputs up to the engine's limits, written, updated around and read."""
    big = rich_machine().model_copy(
        update={
            "metadata": {f"k{i}": f"value {i} " * 40 for i in range(40)},
            "tasks": {
                name: TaskRecord(
                    executor="terraform",
                    status="succeeded",
                    attempt=1,
                    state="PROVISION",
                    epoch=3,
                    output={f"out{i}": f"{name} output {i} " * 60 for i in range(30)},
                )
                for name in ("network", "database")
            },
        }
    )
    store.create(big, [entry(1, "created")])
    assert store.get(big.id) == big
    moved = big.model_copy(update={"version": 2, "state": "RUN", "history_seq": 2})
    store.update(moved, 1, [entry(2, "transition")])
    assert store.get(big.id) == moved
    smaller = moved.model_copy(update={"version": 3, "metadata": {"k": "v"}})
    store.update(smaller, 2)
    assert store.get(big.id) == smaller
    assert [e.seq for e in store.history(big.id)[0]] == [1, 2]


def test_histories_of_two_machines_do_not_mix(store: Store) -> None:
    store.create(machine("m-1"), [entry(1, "created")])
    store.create(machine("m-2"), [entry(1, "created"), entry(2)])
    assert len(store.history("m-1")[0]) == 1
    assert len(store.history("m-2")[0]) == 2


# ---- specs ----------------------------------------------------------------------------


def spec(name: str = "preview-env", events: tuple[str, ...] = ("LAUNCH",)) -> Spec:
    return Spec.model_validate(
        {
            "name": name,
            "events": list(events),
            "states": {
                "INIT": {"on": {"LAUNCH": [{"action": "advance", "state": "DONE"}]}},
                "DONE": {"terminal": True, "tasks": ["t"]},
            },
            "tasks": {
                "t": {
                    "executor": "lambda",
                    "config": {"name": "fn"},
                    "retry": {"attempts": 3, "backoff_seconds": 2},
                }
            },
        }
    )


def test_specs_round_trip_by_digest(store: Store) -> None:
    one = spec()
    store.put_spec(one)
    stored = store.get_spec(one.digest)
    assert stored is not None
    assert stored.document() == one.document() and stored.digest == one.digest


def test_put_spec_is_idempotent_and_digests_do_not_mix(store: Store) -> None:
    one, two = spec(), spec(events=("LAUNCH", "DESTROY"))
    store.put_spec(one)
    store.put_spec(one)
    store.put_spec(two)
    assert store.get_spec(one.digest).document() == one.document()  # type: ignore[union-attr]
    assert store.get_spec(two.digest).document() == two.document()  # type: ignore[union-attr]


def test_an_unknown_digest_is_none(store: Store) -> None:
    assert store.get_spec("sha256:" + "f" * 64) is None


# ---- idempotency records --------------------------------------------------------------


def record(key: str = "key-1", *, body: str = "first", ttl: int = 3600) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        fingerprint="fp-" + body,
        status=201,
        body={"id": body, "nested": {"list": [1, 2]}},
        headers={"Content-Type": "application/json"},
        expires_at=int(time.time()) + ttl,
    )


def test_an_idempotency_record_round_trips(store: Store) -> None:
    first = record()
    assert store.put_idempotency(first) is True
    assert store.get_idempotency("key-1") == first


def test_the_first_idempotency_writer_wins(store: Store) -> None:
    assert store.put_idempotency(record(body="first")) is True
    assert store.put_idempotency(record(body="second")) is False
    kept = store.get_idempotency("key-1")
    assert kept is not None and kept.body["id"] == "first"


def test_concurrent_idempotency_writers_have_one_winner(store: Store) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def attempt(n: int) -> None:
        barrier.wait()
        results.append(store.put_idempotency(record(body=f"w{n}")))

    run_threads(attempt, 6)
    assert sorted(results) == [False] * 5 + [True]


def test_an_expired_idempotency_record_is_gone_and_can_be_replaced(store: Store) -> None:
    assert store.put_idempotency(record(body="old", ttl=-10)) is True
    assert store.get_idempotency("key-1") is None
    assert store.put_idempotency(record(body="new")) is True
    kept = store.get_idempotency("key-1")
    assert kept is not None and kept.body["id"] == "new"


def test_an_answer_of_non_ascii_text_fits_one_idempotency_record(store: Store) -> None:
    """A machine's answer is up to a few hundred KB of UTF-8 (its item's size); escaped
    as ASCII, Cyrillic text takes three times the bytes and would pass DynamoDB's 400 KB."""
    answer = record()
    answer.body = {"id": "m", "output": "я" * 100_000}  # 200 KB as UTF-8, 600 KB escaped
    assert store.put_idempotency(answer) is True
    assert store.get_idempotency("key-1") == answer


def test_an_unknown_idempotency_key_is_none(store: Store) -> None:
    assert store.get_idempotency("never-seen") is None


# ---- helpers --------------------------------------------------------------------------


def run_threads(target: Callable[[int], None], count: int) -> None:
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            target(n)
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]
