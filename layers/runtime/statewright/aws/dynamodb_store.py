"""The Store on one DynamoDB table (key names in statewright.aws.table_layout).

Items (pk / sk):

- machine      ``MACHINE#<id>`` / ``MACHINE``: ``m`` (the machine without its version
  and its newest history entries, packed: statewright.aws.item_codec), ``version`` (the
  optimistic-concurrency counter every write is conditional on), ``gsi1pk``/``gsi1sk``
  (spec name / ``<state>#<id>``, the sparse ``by_spec`` index), ``gsi2pk``/``gsi2sk``
  (a shard / ``<due>#<id>``, the sparse ``by_due`` index, only while the machine has
  reconciler work: statewright.due) and ``hist`` (this incarnation's history id).
  Items written before the packed layout hold ``doc`` (the machine as JSON) and
  ``recent`` (entries as JSON) instead; they are read as they are and rewritten packed
  on their next write.
- history page ``MACHINE#<id>`` / ``HISTORY#<hist>#<seq of its last entry>``: ``page``,
  older entries packed, spilled out of the machine item when they would take it past
  one write unit (or ``entry``, one entry as JSON, as earlier versions spilled); with a
  history retention, they expire (TTL) that many days after they spill.
- side item    ``MACHINE#<id>`` / ``DATA#<hist>#<version>#<digest>``: ``d``, the
  machine's metadata and task outputs, packed, while they are large
  (``LARGE_FIELDS_BYTES``); never changed, written only when they change.
- spec         ``SPEC#<digest>`` / ``SPEC``: a normalized spec, written once.
- idempotency  ``IDEMPOTENCY#<key>`` / ``IDEMPOTENCY``: a replayable answer with TTL.

History rides in the machine item's own conditional write, so an event costs one read
and one write unit while the item stays within a unit; when the entries already
committed would take it past one, they move to a page item first (one PutItem), and the
conditional write leaves them out. Spilled entries are committed and never change (a
sequence number is only ever given once, under the version check), so writing them is
safe even if the write after it then loses a race. ``docs/aws.md`` has the whole
design."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from statewright.aws import item_codec
from statewright.aws.item_size import ITEM_MAX_BYTES, item_size
from statewright.aws.table_layout import (
    DUE_INDEX,
    DUE_INDEX_PARTITION_KEY,
    DUE_INDEX_SORT_KEY,
    DUE_SHARDS,
    LIST_INDEX,
    LIST_INDEX_PARTITION_KEY,
    LIST_INDEX_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from statewright.due import due_at
from statewright.errors import (
    ConfigurationError,
    Conflict,
    ItemTooLarge,
    MachineExists,
    VersionConflict,
)
from statewright.limits import json_size
from statewright.model import HistoryEntry, Machine
from statewright.page_tokens import KEY_BYTES
from statewright.ports import IdempotencyRecord, Position, Store
from statewright.spec.models import Spec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        QueryOutputTypeDef,
        WriteRequestTypeDef,
    )

    Item = Mapping[str, AttributeValueTypeDef]
else:
    Item = Mapping[str, Any]

WRITE_UNIT_BYTES = 1024
"""DynamoDB bills a write one unit per started KiB of the item (the larger of the item
before and after). History stays in the machine item while the item stays within one
unit; entries that would take it past one spill to a page item."""

_MACHINE_PREFIX = "MACHINE#"
_MACHINE_SK = "MACHINE"
_HISTORY_PREFIX = "HISTORY#"
_SPEC_SK = "SPEC"
_IDEMPOTENCY_SK = "IDEMPOTENCY"
_PAGE_TOKEN_KEY = {PARTITION_KEY: {"S": "CONFIG#page-token-key"}, SORT_KEY: {"S": "CONFIG"}}
_PACKED = "m"  # the machine item's packed machine and inline history
_PAGE = "page"  # a history page's packed entries
_BATCH = 25  # BatchWriteItem's limit
_BATCH_GET = 100  # BatchGetItem's limit
_CACHE_SIZE = 1024
_SIDE_PREFIX = "DATA#"
_SIDE = "d"  # a side item's packed metadata and outputs
LARGE_FIELDS_BYTES = 1024
"""Metadata and task outputs whose JSON together passes this move to a side item,
written only when they change, so that an event writes one unit however large they are."""

log = logging.getLogger(__name__)


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _str(item: Item, name: str) -> str:
    return item[name]["S"]


def _int(item: Item, name: str) -> int:
    return int(item[name]["N"])


def _entry_json(entry: HistoryEntry) -> dict[str, Any]:
    # Unset fields are most of an entry; leaving them out halves its size.
    return entry.model_dump(mode="json", exclude_none=True)


def _machine_pk(machine_id: str) -> str:
    return _MACHINE_PREFIX + machine_id


def _machine_key(machine_id: str) -> dict[str, AttributeValueTypeDef]:
    """The primary key of a machine's item."""
    return {PARTITION_KEY: _s(_machine_pk(machine_id)), SORT_KEY: _s(_MACHINE_SK)}


def _due_keys(machine: Machine) -> dict[str, AttributeValueTypeDef]:
    """The machine's keys in the sparse ``by_due`` index; none when it is idle."""
    due = due_at(machine)
    if due is None:
        return {}
    digest = hashlib.sha256(machine.id.encode()).digest()
    shard = int.from_bytes(digest[:4], "big") % DUE_SHARDS
    return {
        DUE_INDEX_PARTITION_KEY: _s(_due_shard(shard)),
        DUE_INDEX_SORT_KEY: _s(f"{due}#{machine.id}"),
    }


def _due_shard(shard: int) -> str:
    return f"DUE#{shard:02d}"


def _history_sk(hist: str, seq: int) -> str:
    return f"{_HISTORY_PREFIX}{hist}#{seq:010d}"


def _is_machine_item(item: Item) -> bool:
    """A whole machine item, not the keys an index projects."""
    return _PACKED in item or "doc" in item


def _unpacked(item: Item) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """The machine's JSON (version included), its inline history entries and the name
    of its side item (None when it has none), from the packed layout or the one before."""
    side = None
    if _PACKED in item:
        doc, entries, *rest = item_codec.unpack(bytes(item[_PACKED]["B"]))
        side = str(rest[0]) if rest else None
    else:
        doc = json.loads(_str(item, "doc"))
        entries = [json.loads(value["S"]) for value in item.get("recent", {}).get("L", [])]
    if not isinstance(doc, dict) or not isinstance(entries, list):
        raise TypeError("a machine item holds a machine and a list of history entries")
    doc["version"] = _int(item, "version")
    return doc, entries, side


def _side_sk(hist: str, side: str) -> str:
    return f"{_SIDE_PREFIX}{hist}#{side}"


def _take_large_fields(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Takes metadata and task outputs out of the machine's JSON when together they are
    large, and returns them; None (``doc`` unchanged) when they are small."""
    tasks = doc["tasks"]
    outputs = {name: task["output"] for name, task in tasks.items() if task["output"] is not None}
    large = {"metadata": doc["metadata"], "outputs": outputs}
    if json_size(large) <= LARGE_FIELDS_BYTES:
        return None
    doc["metadata"] = {}
    for name in outputs:
        tasks[name]["output"] = None
    return large


def _put_back_large_fields(doc: dict[str, Any], large: Any) -> None:
    doc["metadata"] = large["metadata"]
    for name, output in large["outputs"].items():
        doc["tasks"][name]["output"] = output


_Sides = Mapping[tuple[str, str], Item]  # side items read with a listing, by (pk, sk)


class _MovedOn(Exception):
    """The side item a machine item names is gone: the machine was written meanwhile."""


def _page_entries(item: Item) -> list[dict[str, Any]]:
    """The entries of a history page (or of one entry as spilled before pages)."""
    if _PAGE in item:
        entries = item_codec.unpack(bytes(item[_PAGE]["B"]))
        if not isinstance(entries, list):
            raise TypeError("a history page holds a list of entries")
        return entries
    return [json.loads(_str(item, "entry"))]


def _spill_pays(item: Item, without: Item) -> bool:
    """Whether the committed inline entries should move to a page before a write of
    ``item`` (``without``: the item without them): when they cost it a write unit of its
    own and fill at least half a unit (so a page is never written for a few entries on
    every event), or when it would pass DynamoDB's limit with them."""
    size = item_size(item)
    if size > ITEM_MAX_BYTES:
        return True
    if size <= WRITE_UNIT_BYTES:
        return False
    rest = item_size(without)
    units = -(-size // WRITE_UNIT_BYTES)
    return units > -(-rest // WRITE_UNIT_BYTES) and size - rest >= WRITE_UNIT_BYTES // 2


@dataclass(frozen=True)
class _Seen:
    """What this process last saw of a machine item: enough to write its next version
    without reading it again (the write is conditional on this version and ``hist``)."""

    hist: str
    version: int
    entries: tuple[dict[str, Any], ...]  # the inline history, oldest first
    due: Mapping[str, AttributeValueTypeDef]  # its by_due keys; empty while idle
    side: str | None  # the name of its side item, if it has one


class DynamoStore(Store):
    """A Store on one DynamoDB table (any DynamoDB: AWS, moto, dynalite)."""

    def __init__(  # noqa: PLR0913 — keyword-only settings with defaults; wiring.py names each
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        deadline_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        history_retention_days: int | None = None,
    ) -> None:
        super().__init__(deadline_seconds=deadline_seconds, clock=clock, sleep=sleep)
        self._client = client
        self._table = table_name
        self._now = wall_clock
        self._history_ttl = (
            None if history_retention_days is None else history_retention_days * 86400
        )
        # machine id -> its item as last read or written; lets an update write the
        # whole item (and know when to spill) without reading it again.
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    # ---- what this process has seen of machine items ----------------------------------

    def _remember(self, machine_id: str, seen: _Seen) -> None:
        with self._lock:
            self._seen[machine_id] = seen
            self._seen.move_to_end(machine_id)
            while len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)

    def _forget(self, machine_id: str) -> None:
        with self._lock:
            self._seen.pop(machine_id, None)

    def _known(self, machine_id: str, version: int) -> _Seen | None:
        with self._lock:
            seen = self._seen.get(machine_id)
        return seen if seen is not None and seen.version == version else None

    # ---- (de)serialization ------------------------------------------------------------

    @staticmethod
    def machine_item(  # noqa: PLR0913 — the item's parts; bench/ passes the first two
        machine: Machine,
        hist: str,
        history: Sequence[Mapping[str, Any]] = (),
        due: Mapping[str, AttributeValueTypeDef] | None = None,
        *,
        doc: Mapping[str, Any] | None = None,
        side: str | None = None,
    ) -> dict[str, AttributeValueTypeDef]:
        """The machine's item as this store writes it (``hist``: its history id,
        ``history``: its inline entries as JSON, ``due``: its by_due keys when not the
        machine's own, ``doc``: its JSON without what went to the side item ``side``);
        also how bench/ and tests store many machines quickly."""
        if doc is None:
            doc = machine.model_dump(mode="json", exclude={"version"})
        packed = [doc, list(history)] + ([side] if side is not None else [])
        return {
            **_machine_key(machine.id),
            _PACKED: {"B": item_codec.pack(packed)},
            "version": _n(machine.version),
            LIST_INDEX_PARTITION_KEY: _s(machine.spec),
            LIST_INDEX_SORT_KEY: _s(f"{machine.state}#{machine.id}"),
            **(_due_keys(machine) if due is None else due),
            "hist": _s(hist),
        }

    def _resolved(
        self, item: Item, sides: _Sides | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
        """:func:`_unpacked`, with the large fields put back from the side item (from
        ``sides`` when read already, else read consistently; _MovedOn when it is gone)."""
        doc, entries, side = _unpacked(item)
        if side is not None:
            pk, sk = _str(item, PARTITION_KEY), _side_sk(_str(item, "hist"), side)
            found = (sides or {}).get((pk, sk))
            if found is None:
                key = {PARTITION_KEY: _s(pk), SORT_KEY: _s(sk)}
                response = self._client.get_item(
                    TableName=self._table, Key=key, ConsistentRead=True
                )
                found = response.get("Item")
            if found is None:
                raise _MovedOn(side)
            _put_back_large_fields(doc, item_codec.unpack(bytes(found[_SIDE]["B"])))
        return doc, entries, side

    def _machine_from(self, item: Item, sides: _Sides | None = None) -> Machine:
        return Machine.model_validate(self._resolved(item, sides)[0])

    def _read(self, machine_id: str, item: Item) -> Machine:
        """The machine of a whole item this store read, remembered for the next update."""
        doc, entries, side = self._resolved(item)
        machine = Machine.model_validate(doc)
        if "hist" in item:
            self._remember(machine_id, self._seen_of(item, machine.version, tuple(entries), side))
        return machine

    def _machine_item_of(self, machine_id: str) -> Item | None:
        """The machine's item as stored (a consistent GetItem), or None."""
        response = self._client.get_item(
            TableName=self._table, Key=_machine_key(machine_id), ConsistentRead=True
        )
        return response.get("Item")

    # ---- the four primitives ----------------------------------------------------------

    def get(self, machine_id: str) -> Machine | None:
        # A side item gone means a writer replaced it after the machine item was read:
        # the machine has moved on, so read it again. Each miss is another writer's
        # success, so this ends once writers pause; under writers that never pause it
        # gives up at the deadline as mutate does, with the same retryable Conflict.
        # Missing under the very version that names it, the item is damaged instead.
        deadline = self._clock() + self.deadline_seconds
        missed: int | None = None
        while True:
            item = self._machine_item_of(machine_id)
            if item is None:
                self._forget(machine_id)
                return None
            version = _int(item, "version")
            try:
                return self._read(machine_id, item)
            except _MovedOn as exc:
                if version == missed:
                    raise ValueError(
                        f"machine {machine_id} names a side item that is missing"
                    ) from exc
                if self._clock() >= deadline:
                    raise Conflict.too_fast(machine_id, "be read") from exc
                missed = version

    def _side_for(
        self, machine_id: str, hist: str, doc: dict[str, Any], version: int, seen: str | None
    ) -> str | None:
        """Moves the large fields of ``doc`` to a side item and returns its name (None:
        they stay). A side item never changes: it is named by the version that first
        wrote it and a digest of its content, put before the machine item names it, and
        kept (not written again) while the content stays the same."""
        large = _take_large_fields(doc)
        if large is None:
            return None
        packed = item_codec.pack(large)
        digest = hashlib.sha256(packed).hexdigest()[:16]
        if seen is not None and seen.endswith("#" + digest):
            return seen
        side = f"{version:010d}#{digest}"
        item: dict[str, AttributeValueTypeDef] = {
            PARTITION_KEY: _s(_machine_pk(machine_id)),
            SORT_KEY: _s(_side_sk(hist, side)),
            _SIDE: {"B": packed},
        }
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except ClientError as exc:
            raise self._too_large(machine_id, exc, item) from exc
        return side

    def _drop_side(self, machine_id: str, hist: str, side: str) -> None:
        """Deletes a side item no version after the one just written names; one left
        behind (a failure here) goes with the machine."""
        key = {PARTITION_KEY: _s(_machine_pk(machine_id)), SORT_KEY: _s(_side_sk(hist, side))}
        try:
            self._client.delete_item(TableName=self._table, Key=key)
        except ClientError as exc:
            log.warning(
                "side item %s of machine %s left until the machine is deleted: %s",
                side,
                machine_id,
                exc.response.get("Error", {}).get("Code"),
            )

    def create(self, machine: Machine, history: Sequence[HistoryEntry] = ()) -> None:
        entries = tuple(_entry_json(entry) for entry in history)
        hist = uuid.uuid4().hex[:16]
        doc = machine.model_dump(mode="json", exclude={"version"})
        side = self._side_for(machine.id, hist, doc, machine.version, None)
        item = self.machine_item(machine, hist, entries, doc=doc, side=side)
        client = self._client
        try:
            client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            if side is not None:  # under this fresh hist, nothing else can name it
                self._drop_side(machine.id, hist, side)
            raise MachineExists(
                f"machine {machine.id} already exists; choose another id, or send it "
                "events at /machines/{id}/events"
            ) from exc
        except ClientError as exc:
            raise self._too_large(machine.id, exc, item) from exc
        self._remember(machine.id, self._seen_of(item, machine.version, entries, side))

    @staticmethod
    def _seen_of(
        item: Item, version: int, entries: tuple[dict[str, Any], ...], side: str | None
    ) -> _Seen:
        due = {k: item[k] for k in (DUE_INDEX_PARTITION_KEY, DUE_INDEX_SORT_KEY) if k in item}
        return _Seen(_str(item, "hist"), version, entries, due, side)

    def update(
        self, machine: Machine, expected_version: int, history: Sequence[HistoryEntry] = ()
    ) -> None:
        new = tuple(_entry_json(entry) for entry in history)
        for attempt in range(2):
            seen = self._known(machine.id, expected_version) or self._read_for_update(
                machine.id, expected_version
            )
            try:
                self._replace(machine, seen, new)
                return
            except VersionConflict as conflict:
                current = conflict.current
                # The version matched but not ``hist``: what this process remembered
                # was another incarnation of the id; the one just read is written over.
                if attempt == 0 and current is not None and current.version == expected_version:
                    continue
                raise

    def _read_for_update(self, machine_id: str, expected_version: int) -> _Seen:
        """The item to update, read because this process has not seen that version (a
        store that did not write or read the machine last)."""
        current = self.get(machine_id)
        seen = self._known(machine_id, expected_version)
        if seen is None:  # another version (or none): the write could not succeed
            raise VersionConflict(machine_id, current)
        return seen

    def _replace(self, machine: Machine, seen: _Seen, new: tuple[dict[str, Any], ...]) -> None:
        """Writes the item's next version over ``seen`` (conditional on it)."""
        due = _due_keys(machine)
        if due and seen.due and _str(seen.due, DUE_INDEX_SORT_KEY) <= _str(due, DUE_INDEX_SORT_KEY):
            # Due no earlier than the index already says: the entry stays (a key change
            # is two index writes), and the reconciler, which reads the machine and asks
            # due_at, still finds it in time.
            due = dict(seen.due)
        doc = machine.model_dump(mode="json", exclude={"version"})
        side = self._side_for(machine.id, seen.hist, doc, machine.version, seen.side)
        inline = (*seen.entries, *new)
        item = self.machine_item(machine, seen.hist, inline, due, doc=doc, side=side)
        if new and seen.entries and item_size(item) > WRITE_UNIT_BYTES:
            without = self.machine_item(machine, seen.hist, new, due, doc=doc, side=side)
            if _spill_pays(item, without):
                self._spill(machine.id, seen.hist, seen.entries)
                inline = new
                item = without
        client = self._client
        try:
            client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="#version = :expected AND #hist = :hist",
                ExpressionAttributeNames={"#version": "version", "#hist": "hist"},
                ExpressionAttributeValues={":expected": _n(seen.version), ":hist": _s(seen.hist)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            raise VersionConflict(machine.id, self._current_from(machine.id, exc)) from exc
        except ClientError as exc:
            raise self._too_large(machine.id, exc, item) from exc
        self._remember(machine.id, self._seen_of(item, machine.version, inline, side))
        if seen.side is not None and seen.side != side:
            self._drop_side(machine.id, seen.hist, seen.side)

    def delete(self, machine_id: str, expected_version: int) -> None:
        client = self._client
        try:
            response = client.delete_item(
                TableName=self._table,
                Key=_machine_key(machine_id),
                ConditionExpression="#version = :expected",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":expected": _n(expected_version)},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client.exceptions.ConditionalCheckFailedException as exc:
            raise VersionConflict(machine_id, self._current_from(machine_id, exc)) from exc
        self._forget(machine_id)
        old = response.get("Attributes", {})
        if "hist" in old:
            self._delete_history(machine_id, _str(old, "hist"))

    # ---- DynamoDB's item limit ---------------------------------------------------------

    @staticmethod
    def _too_large(machine_id: str, exc: ClientError, item: Item) -> Exception:
        """ItemTooLarge when DynamoDB refused ``item`` for its size, else ``exc`` itself.

        A size refusal is a ValidationException like any malformed request; the item
        that was refused tells them apart (its size as DynamoDB counts it), not the
        error's wording."""
        size = item_size(item)
        if exc.response.get("Error", {}).get("Code") == "ValidationException" and (
            size > ITEM_MAX_BYTES
        ):
            return ItemTooLarge(machine_id, size, ITEM_MAX_BYTES)
        return exc

    def _current_from(self, machine_id: str, exc: Any) -> Machine | None:
        """The item a failed conditional write returned (ALL_OLD), or — on a DynamoDB
        that ignores ReturnValuesOnConditionCheckFailure, like dynalite — a fresh read."""
        item = exc.response.get("Item")
        if item is None:
            return self.get(machine_id)
        try:
            return self._read(machine_id, item)
        except _MovedOn:
            return self.get(machine_id)

    # ---- history ----------------------------------------------------------------------

    def _spill(self, machine_id: str, hist: str, entries: Sequence[Mapping[str, Any]]) -> None:
        """One page of committed entries, named by the sequence number of its last."""
        expiry: dict[str, AttributeValueTypeDef] = {}
        if self._history_ttl is not None:
            expiry[TTL_ATTRIBUTE] = _n(int(self._now()) + self._history_ttl)
        self._client.put_item(
            TableName=self._table,
            Item={
                PARTITION_KEY: _s(_machine_pk(machine_id)),
                SORT_KEY: _s(_history_sk(hist, int(entries[-1]["seq"]))),
                _PAGE: {"B": item_codec.pack(list(entries))},
                **expiry,
            },
        )

    def _query_pages(self, **query: Any) -> Iterator[QueryOutputTypeDef]:
        """A consistent Query of this table, page after page (LastEvaluatedKey)."""
        start: Mapping[str, AttributeValueTypeDef] | None = None
        while True:
            kwargs = dict(query)
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            page = self._client.query(TableName=self._table, ConsistentRead=True, **kwargs)
            yield page
            start = page.get("LastEvaluatedKey")
            if start is None:
                return

    def _delete_history(self, machine_id: str, hist: str) -> None:
        """Deletes the incarnation's history pages and side items (one Query of the
        machine's partition: a new incarnation's items, another ``hist``, stay)."""
        pk = _s(_machine_pk(machine_id))
        prefixes = (f"{_HISTORY_PREFIX}{hist}#", f"{_SIDE_PREFIX}{hist}#")
        for page in self._query_pages(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            ExpressionAttributeValues={":pk": pk},
            ProjectionExpression="#pk, #sk",
        ):
            self._batch_write(
                [
                    {"DeleteRequest": {"Key": {PARTITION_KEY: pk, SORT_KEY: key[SORT_KEY]}}}
                    for key in page.get("Items", [])
                    if _str(key, SORT_KEY).startswith(prefixes)
                ]
            )

    def _batch_write(self, requests: Sequence[WriteRequestTypeDef]) -> None:
        for i in range(0, len(requests), _BATCH):
            pending: list[WriteRequestTypeDef] = list(requests[i : i + _BATCH])
            pause = 0.02
            while pending:
                response = self._client.batch_write_item(RequestItems={self._table: pending})
                unprocessed: Any = response.get("UnprocessedItems", {})
                pending = list(unprocessed.get(self._table, []))
                if pending:
                    self._sleep(pause)  # throttled: back off before the remainder
                    pause = min(pause * 2, 1.0)

    def history_after(
        self, machine_id: str, *, limit: int, after_seq: int
    ) -> tuple[list[HistoryEntry], bool]:
        after = after_seq
        item = self._machine_item_of(machine_id)
        if item is None:
            return [], False
        recent = [HistoryEntry.model_validate(raw) for raw in _unpacked(item)[1]]
        # Entries spill only in a write that adds new ones, which stay inline, so an
        # empty inline history means nothing was ever spilled either.
        first_inline = recent[0].seq if recent else after + 1
        entries: list[HistoryEntry] = []
        if after + 1 < first_inline:
            entries = self._spilled(machine_id, _str(item, "hist"), after, first_inline, limit)
        entries.extend(entry for entry in recent if entry.seq > after)
        return entries[:limit], len(entries) > limit

    def _spilled(
        self, machine_id: str, hist: str, after: int, first_inline: int, limit: int
    ) -> list[HistoryEntry]:
        """Up to ``limit + 1`` spilled entries after ``after``, from the pages whose last
        entry comes after it. Pages written before a write that then lost its race may
        repeat entries of others (the same entries: a sequence number is given once), so
        an entry is taken once. Expired pages are skipped (TTL deletes only eventually,
        dynalite never), so a page may take several queries."""
        now = int(self._now())
        entries: list[HistoryEntry] = []
        last = after
        for page in self._query_pages(
            KeyConditionExpression="#pk = :pk AND #sk BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            ExpressionAttributeValues={
                ":pk": _s(_machine_pk(machine_id)),
                ":lo": _s(_history_sk(hist, after + 1)),
                ":hi": _s(_history_sk(hist, first_inline - 1)),
            },
            Limit=limit + 1,
        ):
            for it in page["Items"]:
                if TTL_ATTRIBUTE in it and _int(it, TTL_ATTRIBUTE) <= now:
                    continue
                for raw in _page_entries(it):
                    if int(raw["seq"]) > last:
                        entries.append(HistoryEntry.model_validate(raw))
                        last = entries[-1].seq
            if len(entries) > limit:
                break
        return entries

    # ---- listing ----------------------------------------------------------------------

    def machines_after(
        self, *, spec: str | None, state: str | None, limit: int, after: Position | None
    ) -> tuple[list[tuple[Machine, Position]], Position | None]:
        # ``after`` is a LastEvaluatedKey this store handed out (page tokens are signed).
        start: dict[str, AttributeValueTypeDef] | None = after
        items: list[Item] = []
        while len(items) < limit:
            page = self._list_page(spec, state, limit - len(items), start)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                start = None
                break
            start = dict(page["LastEvaluatedKey"])
        # DynamoDB hands out a LastEvaluatedKey whenever a page fills, even when nothing
        # follows; look one item ahead so the last page says so.
        if start is not None and not self._any_after(spec, state, start):
            start = None
        machines = self._machines_from_index(items)
        return machines, start

    def _list_page(
        self,
        spec: str | None,
        state: str | None,
        limit: int,
        start: Mapping[str, AttributeValueTypeDef] | None,
    ) -> Any:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": LIST_INDEX,
            "Limit": limit,
            "ExpressionAttributeNames": {"#gsk": LIST_INDEX_SORT_KEY},
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        values: dict[str, AttributeValueTypeDef] = {}
        if state is not None:
            values[":prefix"] = _s(f"{state}#")
        if spec is not None:
            kwargs["ExpressionAttributeNames"]["#gpk"] = LIST_INDEX_PARTITION_KEY
            values[":spec"] = _s(spec)
            condition = "#gpk = :spec"
            if state is not None:
                condition += " AND begins_with(#gsk, :prefix)"
            else:
                del kwargs["ExpressionAttributeNames"]["#gsk"]
            kwargs["KeyConditionExpression"] = condition
            kwargs["ExpressionAttributeValues"] = values
            return self._client.query(**kwargs)
        if state is not None:
            kwargs["FilterExpression"] = "begins_with(#gsk, :prefix)"
            kwargs["ExpressionAttributeValues"] = values
        else:
            del kwargs["ExpressionAttributeNames"]
        return self._client.scan(**kwargs)

    def _any_after(
        self, spec: str | None, state: str | None, start: Mapping[str, AttributeValueTypeDef]
    ) -> bool:
        cursor: Mapping[str, AttributeValueTypeDef] | None = start
        while cursor is not None:
            page = self._list_page(spec, state, 25, cursor)
            if page.get("Items"):
                return True
            cursor = page.get("LastEvaluatedKey")
        return False

    def _machines_from_index(self, items: Sequence[Item]) -> list[tuple[Machine, Position]]:
        """Machines from index items, each with its index key (where a page ending at it
        continues)."""
        fetched, sides = self._full_items(items)
        index_keys = (PARTITION_KEY, SORT_KEY, LIST_INDEX_PARTITION_KEY, LIST_INDEX_SORT_KEY)
        machines = []
        for item in items:
            full = fetched.get(_str(item, PARTITION_KEY))
            if full is None:  # deleted between the index read and the fetch
                continue
            machine = self._listed(full, sides)
            if machine is not None:
                position = {k: dict(item[k]) for k in index_keys if k in item}
                machines.append((machine, position))
        return machines

    def _listed(self, item: Item, sides: _Sides | None = None) -> Machine | None:
        """The machine of an item a listing met (``sides``: side items read with it), or
        None when it cannot be read."""
        machine_id = _str(item, PARTITION_KEY).removeprefix(_MACHINE_PREFIX)
        try:
            return self.listed(machine_id, functools.partial(self._machine_from, item, sides))
        except _MovedOn:  # written since the listing read it: the machine as it is now
            return self.get(machine_id)

    def _full_items(self, items: Sequence[Item]) -> tuple[dict[str, Item], _Sides]:
        """The machine items of these index items, by partition key, and the side items
        they name; an index that does not project the machine (KEYS_ONLY) costs a
        consistent BatchGetItem for them, and their side items another."""
        missing = [
            {PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]}
            for item in items
            if not _is_machine_item(item)
        ]
        fetched = {_str(found, PARTITION_KEY): found for found in self._batch_get(missing)}
        whole = (item for item in items if _is_machine_item(item))
        fetched.update((_str(item, PARTITION_KEY), item) for item in whole)
        return fetched, self._side_items(fetched.values())

    def _side_items(self, items: Iterable[Item]) -> _Sides:
        """The side items these machine items name, by key. An item that cannot be
        unpacked names none here (reading it says why it is left out)."""
        keys: list[dict[str, AttributeValueTypeDef]] = []
        for item in items:
            try:
                side = _unpacked(item)[2]
            except (ValueError, KeyError, TypeError):
                continue
            if side is not None:
                sk = _s(_side_sk(_str(item, "hist"), side))
                keys.append({PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: sk})
        return {(_str(f, PARTITION_KEY), _str(f, SORT_KEY)): f for f in self._batch_get(keys)}

    def _batch_get(self, keys: Sequence[Mapping[str, AttributeValueTypeDef]]) -> list[Item]:
        """These items, read consistently, 100 to a BatchGetItem; keys handed back
        unprocessed (throttling) are asked again after a pause that doubles."""
        found: list[Item] = []
        for i in range(0, len(keys), _BATCH_GET):
            pending: list[Any] = list(keys[i : i + _BATCH_GET])
            pause = 0.02
            while pending:
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}}
                )
                found.extend(response.get("Responses", {}).get(self._table, []))
                unprocessed: Any = response.get("UnprocessedKeys", {})
                pending = list(unprocessed.get(self._table, {}).get("Keys", []))
                if pending:
                    self._sleep(pause)  # throttled: back off before the remainder
                    pause = min(pause * 2, 1.0)
        return found

    # ---- the due index ----------------------------------------------------------------

    def due_after(
        self, *, until: str | None, limit: int, after: Position | None
    ) -> tuple[list[Machine], Position | None]:
        """Queries the shards of ``by_due`` in turn (``after``: the shard and the
        LastEvaluatedKey of the page before, from this store). The index is eventually
        consistent, so each machine is read again (BatchGetItem, consistent) and kept
        only while it is still due."""
        shard = after["shard"] if after is not None else 0
        start: Any = after.get("key") if after is not None else None
        items: list[Item] = []
        while shard < DUE_SHARDS and len(items) < limit:
            page = self._due_page(shard, until, limit - len(items), start)
            items.extend(page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if start is None:
                shard += 1
        rest: Position | None = None
        if shard < DUE_SHARDS:
            rest = {"shard": shard, "key": dict(start) if start is not None else None}
        fetched, sides = self._full_items(items)
        machines = []
        for item in items:
            full = fetched.get(_str(item, PARTITION_KEY))
            machine = self._listed(full, sides) if full is not None else None
            due = due_at(machine) if machine is not None else None
            if machine is not None and due is not None and (until is None or due <= until):
                machines.append(machine)
        return machines, rest

    def _due_page(
        self, shard: int, until: str | None, limit: int, start: Mapping[str, Any] | None
    ) -> Any:
        names = {"#pk": DUE_INDEX_PARTITION_KEY}
        values: dict[str, AttributeValueTypeDef] = {":shard": _s(_due_shard(shard))}
        condition = "#pk = :shard"
        if until is not None:
            # "<due>#<id>" <= "<until>#~" exactly when due <= until: '~' sorts after
            # every character a machine id may hold.
            names["#sk"] = DUE_INDEX_SORT_KEY
            values[":until"] = _s(f"{until}#~")
            condition += " AND #sk <= :until"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        return self._client.query(**kwargs)

    # ---- page tokens ------------------------------------------------------------------

    def page_token_key(self) -> bytes:
        """The key item, written once by whichever process needs it first (a conditional
        put: the first one wins and every container reads that one)."""
        client = self._client
        for _ in range(2):
            item = client.get_item(
                TableName=self._table, Key=_PAGE_TOKEN_KEY, ConsistentRead=True
            ).get("Item")
            if item is not None:
                return bytes(item["key"]["B"])
            with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
                client.put_item(
                    TableName=self._table,
                    Item={**_PAGE_TOKEN_KEY, "key": {"B": secrets.token_bytes(KEY_BYTES)}},
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": PARTITION_KEY},
                )
        raise ConfigurationError(f"the page-token key item of table {self._table} vanished")

    # ---- specs ------------------------------------------------------------------------

    def put_spec(self, spec: Spec) -> None:
        client = self._client
        # Stored already is fine: a digest names one content, which never changes.
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.put_item(
                TableName=self._table,
                Item={
                    PARTITION_KEY: _s("SPEC#" + spec.digest),
                    SORT_KEY: _s(_SPEC_SK),
                    "doc": _s(spec.model_dump_json()),
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )

    def get_spec(self, digest: str) -> Spec | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={PARTITION_KEY: _s("SPEC#" + digest), SORT_KEY: _s(_SPEC_SK)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Spec.model_validate_json(_str(item, "doc")) if item is not None else None

    # ---- idempotency ------------------------------------------------------------------

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={PARTITION_KEY: _s("IDEMPOTENCY#" + key), SORT_KEY: _s(_IDEMPOTENCY_SK)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        # TTL deletes expired items only eventually (and dynalite never): check here.
        if item is None or _int(item, TTL_ATTRIBUTE) <= int(self._now()):
            return None
        return IdempotencyRecord(
            key=key,
            fingerprint=_str(item, "fingerprint"),
            status=_int(item, "status"),
            body=json.loads(_str(item, "body")),
            headers=json.loads(_str(item, "headers")),
            expires_at=_int(item, TTL_ATTRIBUTE),
        )

    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        client = self._client
        try:
            client.put_item(
                TableName=self._table,
                Item={
                    PARTITION_KEY: _s("IDEMPOTENCY#" + record.key),
                    SORT_KEY: _s(_IDEMPOTENCY_SK),
                    "fingerprint": _s(record.fingerprint),
                    "status": _n(record.status),
                    # UTF-8 as is: escaped, non-ASCII text takes up to three times the
                    # bytes, and a machine's answer could outgrow the item limit.
                    "body": _s(json.dumps(record.body, separators=(",", ":"), ensure_ascii=False)),
                    "headers": _s(
                        json.dumps(record.headers, separators=(",", ":"), ensure_ascii=False)
                    ),
                    TTL_ATTRIBUTE: _n(record.expires_at),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #ttl <= :now",
                ExpressionAttributeNames={"#pk": PARTITION_KEY, "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": _n(int(self._now()))},
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True
