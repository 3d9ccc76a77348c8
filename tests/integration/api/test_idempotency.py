"""Idempotency-Key semantics on a real store, including the claim that makes two
concurrent requests with one key run once (what the Lambda dispatcher relies on)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from statewright.api_idempotency import Answer, Idempotency, fingerprint
from statewright.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from statewright.local.sqlite_store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite")
    yield s
    s.close()


def answer(status: int = 201, n: int = 1) -> Answer:
    return Answer(status=status, body={"n": n}, headers={"Location": "/x"})


def test_concurrent_requests_with_one_key_run_once(store: SqliteStore) -> None:
    idem = Idempotency(store)
    calls: list[int] = []
    lock = threading.Lock()

    def slow() -> Answer:
        with lock:
            calls.append(1)
        time.sleep(0.3)
        return answer()

    fp = fingerprint("POST", "/machines", {"spec": "a"})
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: idem.run("me", "k", fp, slow), range(5)))
    assert len(calls) == 1
    assert all(r.status == 201 and r.body == {"n": 1} for r in results)
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results) == 4


def test_a_different_request_with_a_claimed_key_is_refused(store: SqliteStore) -> None:
    idem = Idempotency(store)
    started = threading.Event()

    def slow() -> Answer:
        started.set()
        time.sleep(0.3)
        return answer()

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(idem.run, "me", "k", "fp-1", slow)
        started.wait(5)
        with pytest.raises(IdempotencyKeyReused):
            idem.run("me", "k", "fp-2", answer)
        assert first.result().status == 201


def test_a_claim_that_never_answers_ends_in_conflict(tmp_path: Path) -> None:
    now = [time.time()]
    clock = lambda: now[0]  # noqa: E731
    store = SqliteStore(tmp_path / "db.sqlite", wall_clock=clock)
    idem = Idempotency(
        store, wall_clock=clock, sleep=lambda s: now.__setitem__(0, now[0] + s), claim_seconds=2
    )
    # a crashed process's claim: present, never followed by an answer
    assert idem._claim_key("me:k", "fp")
    with pytest.raises(Conflict) as raised:
        idem.run("me", "k", "fp", answer)
    assert raised.value.retry_after_seconds == 1
    # once the claim expired, the key is free again
    now[0] += 3
    assert idem.run("me", "k", "fp", answer).status == 201
    store.close()


def test_server_errors_are_not_replayed(store: SqliteStore) -> None:
    idem = Idempotency(store, claim=False)
    assert idem.run("me", "k", "fp", lambda: answer(status=503)).status == 503
    assert idem.run("me", "k", "fp", lambda: answer(status=202, n=2)).body == {"n": 2}
    replay = idem.run("me", "k", "fp", lambda: answer(status=500, n=3))
    assert replay.body == {"n": 2} and replay.headers["Idempotent-Replayed"] == "true"


def test_keys_are_scoped_to_the_caller(store: SqliteStore) -> None:
    idem = Idempotency(store)
    assert idem.run("alice", "k", "fp-a", lambda: answer(n=1)).body == {"n": 1}
    assert idem.run("bob", "k", "fp-b", lambda: answer(n=2)).body == {"n": 2}


def test_answers_expire_after_an_hour(store: SqliteStore) -> None:
    now = [time.time()]
    idem = Idempotency(store, wall_clock=lambda: now[0], claim=False)
    idem.run("me", "k", "fp", lambda: answer(n=1))
    store._wall_clock = lambda: now[0] + 3601
    now[0] += 3601
    assert idem.run("me", "k", "fp", lambda: answer(n=2)).body == {"n": 2}


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there", "ключ"])
def test_unusable_keys_are_invalid_requests(store: SqliteStore, key: str) -> None:
    with pytest.raises(InvalidRequest):
        Idempotency(store).run("me", key, "fp", answer)
