"""Ports: the Store, Bus, Executor and Timers the service talks to. Adapters live in
statewright.local (SQLite, threads, subprocesses) and statewright.aws (DynamoDB,
EventBridge, Lambda, CodeBuild, EventBridge Scheduler); fakes in tests implement the
same protocols.

The Store follows Powertools' idempotency persistence layer: this base class owns the
optimistic-concurrency protocol (read, decide, conditional write, re-read and retry with
jitter until a deadline) and each backend implements four small primitives."""

from __future__ import annotations

import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from statewright.errors import Conflict, MachineNotFound, VersionConflict
from statewright.limits import PAGE_MAX_BYTES
from statewright.model import BusEvent, HistoryEntry, Machine, TaskFinishedDetail, TaskInvocation
from statewright.page_tokens import PageTokens
from statewright.spec.models import Spec
from statewright.timers import Timer

R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger(__name__)

Position = dict[str, Any]
"""Where a page ended, in a store's own terms (JSON); it travels signed in a next_token."""

# Room kept in a page's budget for what surrounds its items: the envelope and the token.
_PAGE_ENVELOPE_BYTES = 8 * 1024


@dataclass
class Write(Generic[R]):
    """What a decision asks the store to do, and what ``mutate`` returns afterwards.

    ``machine`` None means nothing to write (a stale or duplicate input: no write is
    spent); ``delete`` removes the machine (terminal state satisfied). The store sets
    the new version itself."""

    result: R
    machine: Machine | None = None
    history: Sequence[HistoryEntry] = ()
    delete: bool = False


@dataclass
class IdempotencyRecord:
    key: str
    fingerprint: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: int = 0  # epoch seconds


class Store(ABC):
    """The store contract: get, create-if-absent, update if ``version`` matches, delete if
    ``version`` matches; plus listing, history, specs by digest and idempotency records."""

    def __init__(
        self,
        *,
        deadline_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.deadline_seconds = deadline_seconds
        self._clock = clock
        self._sleep = sleep
        self.conflicts = 0  # conflicting writes seen by this instance (a metric source)
        # Machine items listings left out because they cannot be read (a metric source).
        self.unreadable_machines = 0
        self.page_tokens = PageTokens(self.page_token_key)
        self.page_max_bytes = PAGE_MAX_BYTES

    # ---- the four primitives a backend implements --------------------------------------

    @abstractmethod
    def get(self, machine_id: str) -> Machine | None:
        """The stored machine, or None."""

    @abstractmethod
    def create(self, machine: Machine, history: Sequence[HistoryEntry] = ()) -> None:
        """Store a new machine; raise MachineExists when the id is taken."""

    @abstractmethod
    def update(
        self, machine: Machine, expected_version: int, history: Sequence[HistoryEntry] = ()
    ) -> None:
        """Replace the machine only while the stored version is ``expected_version``
        (``machine.version`` is already the new one); else raise VersionConflict,
        with ``current`` filled in when the backend got it for free."""

    @abstractmethod
    def delete(self, machine_id: str, expected_version: int) -> None:
        """Delete the machine (and its history) only while the stored version is
        ``expected_version``; else raise VersionConflict."""

    # ---- queries and side tables -------------------------------------------------------

    @abstractmethod
    def page_token_key(self) -> bytes:
        """This deployment's secret for signing page tokens, created on first use and the
        same for every process of the deployment."""

    @abstractmethod
    def machines_after(
        self, *, spec: str | None, state: str | None, limit: int, after: Position | None
    ) -> tuple[list[tuple[Machine, Position]], Position | None]:
        """Up to ``limit`` machines (of one spec and/or state) after ``after``, each with
        the position a page ending at it continues from, and the position the next page
        starts from (None: nothing follows)."""

    @abstractmethod
    def history_after(
        self, machine_id: str, *, limit: int, after_seq: int
    ) -> tuple[list[HistoryEntry], bool]:
        """Up to ``limit`` history entries with a sequence number above ``after_seq``,
        oldest first, and whether more follow."""

    @abstractmethod
    def due_after(
        self, *, until: str | None, limit: int, after: Position | None
    ) -> tuple[list[Machine], Position | None]:
        """Up to ``limit`` machines of the sparse due index (statewright.due) whose due
        time is at most ``until`` (None: any), after ``after`` in the index's order, and
        the position the next page starts from (None: nothing follows). Idle machines
        are not in the index: reading it costs nothing for them."""

    def due_machines(self, *, until: str | None = None, page_size: int = 100) -> Iterator[Machine]:
        """Every machine due by ``until`` (None: every machine with work), page by page;
        a machine changed meanwhile may show up again or not at all, as its due time
        moves, and the reconciler's next run sees it."""
        after: Position | None = None
        while True:
            machines, after = self.due_after(until=until, limit=page_size, after=after)
            yield from machines
            if after is None:
                return

    def list_machines(
        self,
        *,
        spec: str | None = None,
        state: str | None = None,
        limit: int = 100,
        next_token: str | None = None,
    ) -> tuple[list[Machine], str | None]:
        """A page of machines (optionally of one spec and/or state) and the next token.
        A page ends after ``limit`` machines, or earlier when its JSON would pass
        ``page_max_bytes``."""
        scope = "machines " + json.dumps([spec, state])
        after = self.page_tokens.read(scope, next_token)
        rows, rest = self.machines_after(spec=spec, state=state, limit=limit, after=after)
        kept = self._fit(rows, lambda row: row[0].public())
        if len(kept) < len(rows):
            rest = kept[-1][1]
        token = self.page_tokens.issue(scope, rest) if rest is not None else None
        return [machine for machine, _ in kept], token

    def history(
        self, machine_id: str, *, limit: int = 100, next_token: str | None = None
    ) -> tuple[list[HistoryEntry], str | None]:
        """A page of the machine's history, oldest first, and the next token; like
        :meth:`list_machines`, it ends early by size."""
        scope = "history " + json.dumps(machine_id)
        after = self.page_tokens.read(scope, next_token)
        after_seq = after["seq"] if after is not None else 0
        entries, more = self.history_after(machine_id, limit=limit, after_seq=after_seq)
        kept = self._fit(entries, lambda entry: entry.model_dump(mode="json"))
        more = more or len(kept) < len(entries)
        token = self.page_tokens.issue(scope, {"seq": kept[-1].seq}) if more and kept else None
        return kept, token

    def listed(self, machine_id: str, read: Callable[[], Machine]) -> Machine | None:
        """``read()`` of one machine item a listing met, or None when the item cannot be
        read (not JSON, not a machine this version knows): logged with the machine's id
        and counted, so that one broken item hides itself only, never the listing, the
        pages after it or a reconciler run. Never its content: it may hold metadata."""
        try:
            return read()
        except (
            ValueError,
            KeyError,
            TypeError,
        ) as exc:  # pydantic's ValidationError is a ValueError
            log.error(
                "machine %s cannot be read (%s); left out of the listing: repair or delete "
                "its item",
                machine_id,
                type(exc).__name__,
            )
            self.unreadable_machines += 1
            return None

    def _fit(self, items: Sequence[T], as_json: Callable[[T], Any]) -> list[T]:
        """The leading items whose JSON, as the API answers it, fits one page (at least
        one item: a single machine is far below the budget)."""
        budget = self.page_max_bytes - _PAGE_ENVELOPE_BYTES
        used = 0
        for count, item in enumerate(items):
            used += len(json.dumps(as_json(item), separators=(",", ":"))) + 1
            if used > budget and count > 0:
                return list(items[:count])
        return list(items)

    @abstractmethod
    def put_spec(self, spec: Spec) -> None:
        """Store a normalized spec under its digest (idempotent)."""

    @abstractmethod
    def get_spec(self, digest: str) -> Spec | None:
        """The spec stored under ``digest``, or None."""

    @abstractmethod
    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        """The unexpired record for ``key``, or None."""

    @abstractmethod
    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Store the record unless an unexpired one exists; False when it did."""

    # ---- the protocol ------------------------------------------------------------------

    def mutate(
        self,
        machine_id: str,
        decide: Callable[[Machine], Write[R]],
        *,
        seed: Machine | None = None,
    ) -> R:
        """Read, decide, write on condition of the version read; on a conflict re-read
        (or use the item the failed write returned) and decide again, with jittered
        backoff, until ``deadline_seconds`` pass; then raise Conflict.

        ``seed``: the machine as the caller itself just wrote it, decided on instead of a
        first read (a follow-up write then costs no read while nobody else wrote
        meanwhile; if somebody did, the conditional write fails and the loop re-reads).

        ``decide`` must be pure: it may run several times."""
        deadline = self._clock() + self.deadline_seconds
        current = seed if seed is not None else self.get(machine_id)
        pause = 0.005
        while True:
            if current is None:
                raise MachineNotFound.of(machine_id)
            write = decide(current)
            try:
                if write.delete:
                    self.delete(machine_id, current.version)
                elif write.machine is not None:
                    new = write.machine.model_copy(update={"version": current.version + 1})
                    self.update(new, current.version, write.history)
                return write.result
            except VersionConflict as exc:
                self.conflicts += 1
                if self._clock() >= deadline:
                    raise Conflict.too_fast(machine_id, "apply this request") from exc
                # Full jitter keeps concurrent writers from retrying in lockstep.
                self._sleep(random.uniform(0, pause))  # noqa: S311 - jitter, not crypto
                pause = min(pause * 2, 0.2)
                current = exc.current if exc.current is not None else self.get(machine_id)


class Bus(Protocol):
    """Publishes events (EventBridge PutEvents, or the local in-process bus)."""

    def publish(self, events: Sequence[BusEvent]) -> None: ...


class Executor(Protocol):
    """Starts a task attempt and returns a run id; the result arrives later as a
    ``Task Finished`` (TaskFinishedDetail) through the bus or a reporter callback.
    ``start`` for a start_key already started must not start a second run."""

    name: str

    def start(self, invocation: TaskInvocation) -> str: ...

    def cancel(self, run_id: str) -> None: ...


Reporter = Callable[[TaskFinishedDetail], None]


class Timers(Protocol):
    """Keeps timers and hands each back to ``Service.fire_timer`` once it is due
    (EventBridge Scheduler one-time schedules, or the local SQLite table and thread).

    ``arm`` is idempotent per ``Timer.name`` (arming a timer again keeps one); a due
    time in the past fires as soon as it can. It raises only when the timer could not
    be kept (the reconciler arms lost timers again). ``disarm`` is best-effort cleanup:
    an unknown or already fired name is no error, and a timer that fires anyway is
    stale."""

    def arm(self, timers: Sequence[Timer]) -> None: ...

    def disarm(self, names: Sequence[str]) -> None: ...
