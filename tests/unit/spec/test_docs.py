"""The schema checked into docs/ is what `statewright schema` prints."""

from __future__ import annotations

import json
from pathlib import Path

from statewright.spec.schema import spec_schema

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "docs" / "machine-1.0.schema.json"


def test_checked_in_schema_matches_the_command() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == spec_schema(), (
        "docs/machine-1.0.schema.json is stale: run "
        "`statewright schema > docs/machine-1.0.schema.json`"
    )
