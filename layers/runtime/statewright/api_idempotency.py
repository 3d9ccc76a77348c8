"""``Idempotency-Key`` on POST: the first answer to a key is replayed for an hour.

Decisions (docs/api.md):
- A key is scoped to the caller (the IAM principal behind API Gateway; everyone is one
  caller locally) and fingerprinted with the method, path and body: the same key with
  another request answers ``409 idempotency_key_reused`` rather than replaying an answer
  to a different question.
- Answers below 500 are kept (an error a client made is its answer); a ``503 conflict``
  is not, so the client's retry with the same key is tried again.
- Two requests with one key at the same time run once: the first claims the key for
  ``CLAIM_SECONDS``; the second waits for the first's answer and replays it (or answers
  ``503 conflict`` when it does not come in time). A claim left by a crashed process
  expires on its own; locally, where one process owns the data dir, the next start
  drops such claims at once.
- A replay carries the header ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from statewright.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from statewright.ports import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL_SECONDS = 3600
# Longer than the service's own conflict deadline (10 s) plus the work around it; a
# claim left by a failed or crashed request blocks its key no longer than this.
CLAIM_SECONDS = 15
MAX_KEY_LENGTH = 255
_CLAIM_SUFFIX = "#claim"
# The status of a claim (no answer yet); stores keep it like any other record.
IN_PROGRESS = 0


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def validate_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidRequest(
            f"header {HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "(a UUID, say)"
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyRecords(Protocol):
    """Where answers are kept: the Service (which keeps them in its store), or a Store."""

    def get_idempotency(self, key: str) -> IdempotencyRecord | None: ...

    def put_idempotency(self, record: IdempotencyRecord) -> bool: ...


class Idempotency:
    def __init__(
        self,
        store: IdempotencyRecords,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        claim_seconds: float = CLAIM_SECONDS,
        claim: bool = True,
    ) -> None:
        """``claim=False`` takes no claim: only for a caller that never runs two
        requests at once (the API always claims)."""
        self._store = store
        self._now = wall_clock
        self._sleep = sleep
        self._claim_seconds = claim_seconds
        self._claim = claim

    def run(
        self, scope: str, key: str, request_fingerprint: str, call: Callable[[], Answer]
    ) -> Answer:
        """``call``'s answer, or the answer already given to this key."""
        stored_key = f"{scope}:{validate_key(key)}"
        replay = self._replay(stored_key, request_fingerprint)
        if replay is not None:
            return replay
        if self._claim and not self._claim_key(stored_key, request_fingerprint):
            return self._wait_for_answer(stored_key, request_fingerprint)
        answer = call()
        if answer.status < 500:
            self._store.put_idempotency(
                IdempotencyRecord(
                    key=stored_key,
                    fingerprint=request_fingerprint,
                    status=answer.status,
                    body=answer.body,
                    headers=answer.headers,
                    expires_at=int(self._now() + TTL_SECONDS),
                )
            )
        return answer

    def _claim_key(self, stored_key: str, request_fingerprint: str) -> bool:
        """True when this request may run: it claimed the key and no answer came in
        meanwhile. False when another request holds the key."""
        claim = IdempotencyRecord(
            key=stored_key + _CLAIM_SUFFIX,
            fingerprint=request_fingerprint,
            status=IN_PROGRESS,
            body={},
            expires_at=int(self._now() + self._claim_seconds),
        )
        if not self._store.put_idempotency(claim):
            return False
        # Between our first look and the claim, the previous claimer may have finished:
        # then waiting replays its answer at once.
        return self._store.get_idempotency(stored_key) is None

    def _replay(self, stored_key: str, request_fingerprint: str) -> Answer | None:
        record = self._store.get_idempotency(stored_key)
        if record is None:
            return None
        if record.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                f"this {HEADER} was already used for a different request in the last hour; "
                "send a new key for a new request"
            )
        return Answer(
            status=record.status,
            body=record.body,
            headers={**record.headers, REPLAYED_HEADER: "true"},
        )

    def _wait_for_answer(self, stored_key: str, request_fingerprint: str) -> Answer:
        claim = self._store.get_idempotency(stored_key + _CLAIM_SUFFIX)
        if claim is not None and claim.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                f"this {HEADER} is in use by a different request; send a new key for a new request"
            )
        deadline = self._now() + self._claim_seconds
        pause = 0.02
        while self._now() < deadline:
            replay = self._replay(stored_key, request_fingerprint)
            if replay is not None:
                return replay
            self._sleep(pause)
            pause = min(pause * 2, 0.5)
        raise Conflict(
            f"a request with this {HEADER} is still in progress; retry after a second",
            retry_after_seconds=1,
        )
