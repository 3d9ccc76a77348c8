"""DynamoDB's item size, counted as AWS counts it (its "Item sizes and formats" page):
each attribute's name plus its value — a string's UTF-8 bytes, a binary's bytes, a
number's significant digits (two a byte) plus one, one byte for a boolean or null, and
three bytes plus one per element for a list or map. The item limit is 400 KB.

The store uses it to recognise DynamoDB's item-size ``ValidationException`` (which has
no code of its own) by the item it tried to write, not by the error's wording."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

ITEM_MAX_BYTES = 400 * 1024


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of an item given as AttributeValues (``{"name": {"S": "..."}}``)."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:  # noqa: PLR0911 — one answer per AttributeValue type
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(_binary(inner))
    if kind == "N":
        return _number_size(str(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in inner)
    if kind == "BS":
        return sum(len(_binary(b)) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"not a DynamoDB AttributeValue type: {kind!r}")


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return base64.b64decode(value)


def _number_size(text: str) -> int:
    try:
        digits = Decimal(text).normalize().as_tuple().digits
    except InvalidOperation:
        return len(text)
    significant = len(digits) if digits != (0,) else 1
    return 1 + (significant + 1) // 2
