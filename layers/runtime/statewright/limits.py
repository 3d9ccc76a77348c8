"""The limits every mode enforces alike (docs/runtime.md, *Limits*): AWS's own, and the
ones the control plane sets so that AWS's are never reached. The engine and the store
base class apply them, so SQLite behaves exactly as DynamoDB does."""

from __future__ import annotations

import json
from typing import Any

KIB = 1024
MIB = 1024 * KIB

METADATA_MAX_BYTES = 16 * KIB
"""A machine's metadata as compact JSON, after an event's metadata is merged into it."""

TASK_OUTPUT_MAX_BYTES = 32 * KIB
"""One task output as compact JSON."""

MACHINE_OUTPUTS_MAX_BYTES = 256 * KIB
"""All task outputs kept on one machine together, as compact JSON."""

ERROR_MAX_BYTES = 2 * KIB
"""A task's error message as kept in its record and history (longer ones are cut)."""

PAGE_MAX_BYTES = 5 * MIB
"""One page of GET /machines or history as answered: a Lambda answer is at most 6 MB."""

DYNAMODB_ITEM_MAX_BYTES = 400 * KIB
"""DynamoDB's item size limit (attribute names and values together)."""

# With the limits above a machine item stays well below DynamoDB's: metadata 16 KiB,
# outputs 256 KiB, 20 inline history entries and the task records with errors of at
# most 2 KiB each, the runs holding a state (one small entry per Terraform source); what
# is left is the store's backstop (ItemTooLarge).


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: how the limits above are measured."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def cut_text(text: str, max_bytes: int = ERROR_MAX_BYTES) -> str:
    """``text`` shortened to at most ``max_bytes`` UTF-8 bytes, saying it was cut."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    keep = raw[: max_bytes - 64].decode(errors="ignore")  # 64: room for the note
    return f"{keep} ... [{len(raw) - len(keep.encode())} more bytes cut]"
