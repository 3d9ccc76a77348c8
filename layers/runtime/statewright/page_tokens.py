"""The one page-token codec: ``next_token`` values are signed with a per-deployment key.

A token carries the position a page ended at (a store's own cursor, JSON) and an
HMAC-SHA256 of that position together with the *scope* it was issued for (which listing,
with which filters; whose history). Only a token this deployment handed out for the
same scope reads back; anything else — made up, altered, cut short, or issued for
another listing or deployment — is ``400 invalid_request``, the same in every store, and
never reaches a database as a cursor it could choke on.

Where the key lives is the store's business (a key file in the local data dir; an item
in the DynamoDB table), see ``Store.page_token_key``."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from statewright.errors import ConfigurationError, InvalidRequest

KEY_BYTES = 32
MAX_TOKEN_CHARS = 4096
_MAC_CHARS = 43  # 32 bytes of HMAC-SHA256, unpadded base64url

NOT_ISSUED_HERE = (
    "next_token is not a token this API handed out for this listing; pass the next_token "
    "of the previous page unchanged, or omit it for the first page"
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Issues and reads signed tokens. ``load_key`` is called once, on first use."""

    def __init__(self, load_key: Callable[[], bytes]) -> None:
        self._load_key = load_key
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        """The deployment's key, loaded once (report tokens are signed with it too: see
        statewright.report_tokens)."""
        with self._lock:
            if self._key is None:
                self._key = self._load_key()
            return self._key

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self.key(), scope.encode() + b"\n" + payload, hashlib.sha256).digest()

    def issue(self, scope: str, position: Mapping[str, Any]) -> str:
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
        return _b64(payload) + _b64(self._mac(scope, payload))

    def read(self, scope: str, token: str | None) -> dict[str, Any] | None:
        """The position ``token`` was issued with, None for no token (the first page);
        InvalidRequest for any token not issued by :meth:`issue` for ``scope``."""
        if token is None or token == "":
            return None
        if not isinstance(token, str) or not _MAC_CHARS < len(token) <= MAX_TOKEN_CHARS:
            raise InvalidRequest(NOT_ISSUED_HERE)
        try:
            payload = _unb64(token[:-_MAC_CHARS])
            mac = _unb64(token[-_MAC_CHARS:])
        except (binascii.Error, ValueError) as exc:  # not base64url (or not ASCII)
            raise InvalidRequest(NOT_ISSUED_HERE) from exc
        if not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise InvalidRequest(NOT_ISSUED_HERE)
        # Signed by this deployment for this scope: the payload is one issue() wrote.
        position = json.loads(payload)
        if not isinstance(position, dict):
            raise InvalidRequest(NOT_ISSUED_HERE)
        return position


def local_key(path: Path) -> bytes:
    """The key kept in ``path`` (the local data dir's key file), created on first use:
    readable by its owner only (0600), written whole before it can be seen, so two
    processes starting at once agree on one key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(KEY_BYTES))
            # A link fails if the name exists: the first process's key wins.
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"{path} should hold a {KEY_BYTES}-byte page-token key but holds {len(key)} "
            "bytes; delete it (a new one is made; page tokens handed out before stop working)"
        )
    return key
