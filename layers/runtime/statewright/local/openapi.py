"""``python -m statewright.local.openapi [FILE]``: the API's OpenAPI document, generated
from its routes (``make openapi`` writes docs/openapi.json; a test fails when the
checked-in copy drifts from the code)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from statewright.api import build_api, openapi_document
from statewright.catalog import SpecCatalog
from statewright.local.bus import LocalBus
from statewright.local.sqlite_store import SqliteStore
from statewright.service import Service

REGENERATE = "make openapi"


def document() -> dict[str, Any]:
    """The document as served at /openapi.json (it depends on the routes only)."""
    with tempfile.TemporaryDirectory() as scratch:
        store = SqliteStore(Path(scratch) / "openapi.db")
        try:
            service = Service(store=store, bus=LocalBus(), executors={}, catalog=SpecCatalog())
            return openapi_document(build_api(service))
        finally:
            store.close()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
