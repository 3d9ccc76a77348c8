"""DynamoDB request units of the calls a run made, from item sizes as DynamoDB counts
them (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):

- an item's size is the sum of its attribute names and values (strings as UTF-8, numbers
  about one byte per two significant digits plus one, lists and maps 3 bytes plus one
  per element);
- a strongly consistent read costs one unit per 4 KB of what it reads (at least one);
  a Query adds up the items it returns before rounding;
- a write costs one unit per 1 KB of the larger of the item before and after it (at
  least one), a failed conditional write included; a BatchWriteItem prices each item;
- a global secondary index pays for its own writes: projection ALL copies the whole
  item, so every write to an indexed item writes the index too, and a write that changes
  the index key writes it twice (delete the old entry, put the new one). KEYS_ONLY pays
  only when the index key changes (or the item enters or leaves the index).

Sizes of items a call does not return (DeleteItem without ReturnValues, a Query that
projects only keys) come from the last time the run saw that item."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.aws_calls import Call
from bench.prices import READ_UNIT_BYTES, WRITE_UNIT_BYTES

Item = Mapping[str, Any]


def value_size(value: Mapping[str, Any]) -> int:
    """Size of one attribute value in DynamoDB's wire format ({"S": ...}, {"N": ...})."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    raise ValueError(f"unknown attribute type {kind}")


def _number_size(text: str) -> int:
    digits = str(Decimal(text).normalize()).lstrip("-").replace(".", "").lstrip("0")
    return math.ceil(len(digits.split("E")[0]) / 2) + 1


def item_size(item: Item) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass(frozen=True)
class Table:
    """What pricing needs of the table: its key names and its indexes' projections."""

    partition_key: str
    sort_key: str
    indexes: tuple[tuple[tuple[str, ...], str], ...]  # ((key attributes), projection)

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> Table:
        keys = {k["KeyType"]: k["AttributeName"] for k in definition["KeySchema"]}
        indexes = tuple(
            (
                tuple(k["AttributeName"] for k in gsi["KeySchema"]),
                gsi.get("Projection", {}).get("ProjectionType", "ALL"),
            )
            for gsi in definition.get("GlobalSecondaryIndexes", [])
        )
        return cls(keys["HASH"], keys["RANGE"], indexes)

    def with_index(self, keys: tuple[str, ...]) -> Table:
        """This table with only the index keyed by ``keys``."""
        return Table(
            self.partition_key, self.sort_key, tuple(i for i in self.indexes if i[0] == keys)
        )

    def key_of(self, item: Item) -> tuple[str, str]:
        return (str(item[self.partition_key]), str(item[self.sort_key]))


@dataclass
class Units:
    read: int = 0
    write: int = 0
    index_write: int = 0
    reads: int = 0  # read requests (GetItem, Query, ...)
    writes: int = 0  # write requests (PutItem, UpdateItem, DeleteItem, BatchWriteItem)
    # index entries put (an item enters), moved (its index key changes), deleted (it leaves)
    index_entries: int = 0
    index_moves: int = 0
    index_exits: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # table write units by request
    largest_write_bytes: int = 0  # the largest item a write stored (or found)

    def _add(self, kind: str, units: int) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + units


def _read_units(size: int) -> int:
    return max(1, math.ceil(size / READ_UNIT_BYTES))


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


class UnitCounter:
    """Prices DynamoDB calls in order, remembering the items it has seen."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._seen: dict[tuple[str, str], Item] = {}

    def count(self, calls: Iterable[Call]) -> Units:
        units = Units()
        for call in calls:
            if call.service == "dynamodb":
                self._one(call, units)
        return units

    def _one(self, call: Call, units: Units) -> None:
        op, params, response = call.operation, call.params, call.response
        if op == "GetItem":
            item = response.get("Item")
            if item is not None:
                self._seen[self.table.key_of(item)] = item
            size = item_size(item) if item else 0
            units.read += self._consistent(params, _read_units(size))
            units.reads += 1
        elif op in ("Query", "Scan"):
            items = response.get("Items", [])
            size = sum(item_size(self._seen.get(self._key(i), i)) for i in items)
            units.read += self._consistent(params, _read_units(size))
            units.reads += 1
        elif op == "BatchGetItem":
            for found in response.get("Responses", {}).values():
                for item in found:
                    units.read += _read_units(item_size(item))
            units.reads += 1
        elif op == "PutItem":
            units.writes += 1
            self._write(units, op, params["Item"], params["Item"], response)
        elif op == "UpdateItem":
            units.writes += 1
            new = response.get("Attributes")
            key = params["Key"]
            old = self._seen.get(self.table.key_of(key))
            if new is None:  # a failed condition: DynamoDB still charges the old item's size
                new = old or key
            self._write(units, op, key, new, response, old=old)
        elif op == "DeleteItem":
            units.writes += 1
            key = params["Key"]
            old = response.get("Attributes") or self._seen.get(self.table.key_of(key))
            self._delete(units, op, key, old)
        elif op == "BatchWriteItem":
            units.writes += 1
            for requests in params["RequestItems"].values():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        self._write(units, op, item, item, {})
                    else:
                        key = request["DeleteRequest"]["Key"]
                        self._delete(units, op, key, self._seen.get(self.table.key_of(key)))
        else:
            raise ValueError(f"no pricing rule for DynamoDB {op}")

    def _key(self, item: Item) -> tuple[str, str]:
        return self.table.key_of(item)

    @staticmethod
    def _consistent(params: Mapping[str, Any], units: int) -> int:
        # Eventually consistent reads cost half (rounded up); the store reads strongly.
        return units if params.get("ConsistentRead") else math.ceil(units / 2)

    def _write(
        self,
        units: Units,
        op: str,
        key: Item,
        new: Item,
        response: Mapping[str, Any],
        *,
        old: Item | None = None,
    ) -> None:
        k = self.table.key_of(key)
        if old is None:
            old = self._seen.get(k)
        sizes = [item_size(new)] + ([item_size(old)] if old else [])
        units.largest_write_bytes = max(units.largest_write_bytes, *sizes)
        table_units = _write_units(max(sizes))
        units.write += table_units
        units._add(op, table_units)
        index_units = sum(
            self._index_writes(units, old, new, projection, keys)
            for keys, projection in self.table.indexes
        )
        units.index_write += index_units
        self._seen[k] = new

    def _delete(self, units: Units, op: str, key: Item, old: Item | None) -> None:
        size = item_size(old) if old else item_size(key)
        table_units = _write_units(size)
        units.write += table_units
        units._add(op, table_units)
        if old:
            for keys, projection in self.table.indexes:
                if all(k in old for k in keys):
                    units.index_write += _write_units(self._index_size(old, projection, keys))
                    units.index_exits += 1
        self._seen.pop(self.table.key_of(key), None)

    def _index_size(self, item: Item, projection: str, keys: tuple[str, ...]) -> int:
        if projection == "ALL":
            return item_size(item)
        names = {self.table.partition_key, self.table.sort_key, *keys}
        return item_size({n: v for n, v in item.items() if n in names})

    def _index_writes(
        self, units: Units, old: Item | None, new: Item, projection: str, keys: tuple[str, ...]
    ) -> int:
        in_old = old is not None and all(k in old for k in keys)
        in_new = all(k in new for k in keys)
        if not in_old and not in_new:
            return 0
        new_units = _write_units(self._index_size(new, projection, keys)) if in_new else 0
        if not in_old:
            units.index_entries += 1
            return new_units  # the item enters the index
        assert old is not None
        old_units = _write_units(self._index_size(old, projection, keys))
        if not in_new:
            units.index_exits += 1
            return old_units  # it leaves the index
        if any(old[k] != new[k] for k in keys):
            units.index_moves += 1
            return old_units + new_units  # key changed: delete the old entry, put the new
        if projection == "ALL" and old != new:
            return new_units  # projected attributes changed in place
        return 0
