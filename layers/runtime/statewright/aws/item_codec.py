"""How the DynamoDB store packs what a machine item holds into one binary attribute.

DynamoDB bills a write by the size of the item, one unit per started KiB, so the machine
item is kept small: the machine's JSON and its newest history entries travel together as
compact JSON compressed with raw DEFLATE and a *preset dictionary* — the JSON fragments
every machine repeats (field names, unset fields, the usual history entries). A machine
of the ``preview-env`` lifecycle with all ten of its history entries takes about 650
bytes this way, against 3,300 as plain JSON (docs/aws.md, "The table").

The first byte names the format. A dictionary is part of its format forever: items
written with it must stay readable, so a better dictionary is a new format byte, never an
edit of an old one. Nothing is dropped before compressing (no default values left out):
what is stored reads back the same whatever later versions change in the models."""

from __future__ import annotations

import json
import zlib
from typing import Any

FORMAT_1 = 1

_DICTIONARY_1 = "".join(
    (
        '{"id":"","spec":"","spec_digest":"sha256:","state":"","previous_state":null,',
        '"status":"running","epoch":1,"tasks":{},"metadata":{},"created_at":"",',
        '"updated_at":"","halted":null,"expires_at":null,"expired":false,',
        '"ttl_seconds":null,"expire_pending":false,"warned":[],"published":{},',
        '"applied":{},"history_seq":0,"idle_next":0,"state_runs":{},"schedule_fires":{}}',
        '{"task":"","state":"","epoch":1,"attempt":1,"run_id":null,"since":""}',
        '{"executor":"terraform","status":"succeeded","attempt":1,"started_at":"",',
        '"finished_at":"","error":null,"error_type":null,"output":{},',
        '"redacted_outputs":[],"state":"","epoch":2,"waiting_for":null,"run_id":"",',
        '"not_before":null,"deadline":null}',
        '{"executor":"lambda","status":"pending","attempt":0,"started_at":null,',
        '"finished_at":null,"error":null,"error_type":null,"output":null,',
        '"redacted_outputs":[],"state":"","epoch":1,"waiting_for":null,"run_id":null,',
        '"not_before":null,"deadline":null}',
        '{"seq":1,"at":"","kind":"created","epoch":1,"state":"","to_state":"",',
        '"source":"api","actor":"arn:aws:iam::"}',
        '{"seq":,"at":"","kind":"task_finished","epoch":,"state":"","task":"",',
        '"attempt":1,"status":"failed","error":"","error_type":"","actor":"statewright"}',
        '{"seq":,"at":"","kind":"event","epoch":,"state":"","event":"NEXT",',
        '"source":"statewright","actor":"statewright"}',
        '{"seq":,"at":"","kind":"task_started","epoch":,"state":"","task":"",',
        '"attempt":1,"status":"running","actor":"statewright"}',
        '{"seq":,"at":"","kind":"transition","epoch":,"state":"","event":"",',
        '"from_state":"","to_state":"","actor":"statewright"}',
    )
).encode()

_DICTIONARIES = {FORMAT_1: _DICTIONARY_1}
_WINDOW = -15  # raw DEFLATE: no zlib header or checksum (DynamoDB keeps the bytes intact)
UNPACKED_MAX_BYTES = 8 * 1024 * 1024
"""More than any item can hold (400 KB of compressed JSON); a larger result means a
damaged or foreign attribute, refused instead of filling the memory."""


def pack(value: Any) -> bytes:
    """``value`` as compact JSON, compressed (the current format)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    compressor = zlib.compressobj(
        9, zlib.DEFLATED, _WINDOW, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARIES[FORMAT_1]
    )
    return bytes([FORMAT_1]) + compressor.compress(text) + compressor.flush()


def unpack(blob: bytes) -> Any:
    """What :func:`pack` packed; ValueError for bytes it did not make."""
    if not blob or blob[0] not in _DICTIONARIES:
        raise ValueError("not a packed attribute of a known format")
    decompressor = zlib.decompressobj(_WINDOW, zdict=_DICTIONARIES[blob[0]])
    try:
        text = decompressor.decompress(blob[1:], UNPACKED_MAX_BYTES)
    except zlib.error as exc:
        raise ValueError(f"damaged packed attribute: {exc}") from exc
    if decompressor.unconsumed_tail or not decompressor.eof:
        raise ValueError("damaged packed attribute: truncated, or larger than any item")
    return json.loads(text)
