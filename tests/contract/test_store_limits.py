"""Page tokens and page sizes (docs/runtime.md, *Limits*), the same in every store: a
page ends early by size with a next_token, and a token the store did not hand out for
this very listing — made up, altered, signed by another deployment, or issued for
another listing — is ``invalid_request``, never a 5xx from the database."""

from __future__ import annotations

import base64
import json
import secrets
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statewright.errors import InvalidRequest
from statewright.page_tokens import PageTokens
from statewright.ports import Store

from tests.contract.test_store_contract import (
    collect,
    entry,
    machine,
    page_history,
    seed_listing,
)


def forged(scope: str, position: dict[str, object]) -> str:
    """A well-formed token for ``position``, signed with a key of another deployment."""
    return PageTokens(lambda: secrets.token_bytes(32)).issue(scope, position)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# What the stores of the first release choked on (OverflowError, UnicodeEncodeError,
# DynamoDB's "The provided starting key is invalid"), now signed or not.
CRAFTED_POSITIONS: list[dict[str, object]] = [
    {"id": "\ud800"},
    {"id": 10**40},
    {"seq": 10**40},
    {"seq": "1"},
    {"after": -1},
    {"pk": {"S": "x"}},
    {"pk": {"S": "MACHINE#a-1"}, "sk": {"S": "MACHINE"}},
    {},
]


@pytest.mark.parametrize("position", CRAFTED_POSITIONS, ids=repr)
def test_crafted_tokens_are_invalid_requests(store: Store, position: dict[str, object]) -> None:
    seed_listing(store)
    store.create(machine("h-1"), [entry(1)])
    raw = json.dumps(position).encode()
    for token in (b64(raw), b64(raw) + "A" * 43, forged("machines [null, null]", position)):
        with pytest.raises(InvalidRequest, match="next_token"):
            store.list_machines(next_token=token)
        with pytest.raises(InvalidRequest, match="next_token"):
            store.history("h-1", next_token=token)


def test_an_altered_token_is_an_invalid_request(store: Store) -> None:
    seed_listing(store)
    _page, token = store.list_machines(limit=2)
    assert token is not None
    for i in range(0, len(token), 7):
        swapped = "B" if token[i] == "A" else "A"
        with pytest.raises(InvalidRequest):
            store.list_machines(limit=2, next_token=token[:i] + swapped + token[i + 1 :])
    with pytest.raises(InvalidRequest):
        store.list_machines(limit=2, next_token=token[:-1])
    with pytest.raises(InvalidRequest):
        store.list_machines(limit=2, next_token=token + "A")


def test_a_token_reads_back_only_for_the_listing_it_was_issued_for(store: Store) -> None:
    seed_listing(store)
    _page, token = store.list_machines(spec="alpha", limit=2)
    assert token is not None
    assert store.list_machines(spec="alpha", limit=2, next_token=token)[0]
    for other in ({"spec": "beta"}, {"state": "RUN"}, {}):
        with pytest.raises(InvalidRequest):
            store.list_machines(limit=2, next_token=token, **other)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        store.history("a-1", next_token=token)


def test_a_history_token_reads_back_only_for_its_machine(store: Store) -> None:
    for name in ("h-1", "h-2"):
        store.create(machine(name), [entry(seq) for seq in range(1, 6)])
    _page, token = store.history("h-1", limit=2)
    assert token is not None
    assert [e.seq for e in store.history("h-1", limit=2, next_token=token)[0]] == [3, 4]
    with pytest.raises(InvalidRequest):
        store.history("h-2", limit=2, next_token=token)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    token=st.one_of(
        st.text(min_size=1, max_size=200),
        st.text(alphabet=string.ascii_letters + string.digits + "-_=", min_size=1, max_size=400),
        st.binary(min_size=1, max_size=120).map(b64),
    )
)
def test_hostile_tokens_are_invalid_requests_and_nothing_else(store: Store, token: str) -> None:
    with pytest.raises(InvalidRequest, match="next_token"):
        store.list_machines(next_token=token)
    with pytest.raises(InvalidRequest, match="next_token"):
        store.history("m-1", next_token=token)


# ---- pages end by size ------------------------------------------------------------------


def test_a_machine_page_ends_early_by_size_and_continues(store: Store) -> None:
    store.page_max_bytes = 48 * 1024
    for i in range(12):
        store.create(machine(f"big-{i:02d}", metadata={"blob": "x" * 8000}))
    page, token = store.list_machines(limit=100)
    assert 1 <= len(page) < 12 and token is not None
    size = len(json.dumps([m.public() for m in page], separators=(",", ":")))
    assert size <= store.page_max_bytes
    assert sorted(collect(store, 100)) == [f"big-{i:02d}" for i in range(12)]


def test_a_history_page_ends_early_by_size_and_continues(store: Store) -> None:
    store.page_max_bytes = 24 * 1024
    store.create(machine(), [entry(seq, error="e" * 2000) for seq in range(1, 31)])
    seqs, pages = page_history(store, "m-1", limit=1000)
    assert seqs == list(range(1, 31))
    assert pages > 2
