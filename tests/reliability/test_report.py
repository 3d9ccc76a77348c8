"""The figures report: records of one suite add up, maxima stay maxima, seeds are not
counts, and the headline totals gather the suites' own names for a figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.report import main, markdown, summarize

RECORDS = [
    {"suite": "storm-sqlite", "mode": "long", "events": 10, "max_retries_per_request": 3},
    {"suite": "storm-sqlite", "mode": "long", "events": 5, "max_retries_per_request": 7},
    {"suite": "crash", "mode": "long", "kills": 4, "recovered": 6, "seed": 99},
    {"suite": "model-sqlite", "mode": "long", "crashes": 2, "machines_recovered": 1},
]


def test_records_of_a_suite_add_up() -> None:
    summary = summarize(RECORDS)
    assert summary["storm-sqlite"] == {"records": 2, "events": 15, "max_retries_per_request": 7}
    assert "seed" not in summary["crash"]


def test_headlines_gather_every_suite() -> None:
    table = markdown(summarize(RECORDS))
    assert "| crashes injected | 6 |" in table  # model crashes + crash-suite kills
    assert "| machines recovered | 7 |" in table
    assert "| storm-sqlite | records 2, events 15, max_retries_per_request 7 |" in table


def test_the_command_filters_by_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "figures.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*RECORDS, {"suite": "x", "mode": "short"}]))
    assert main([str(path), "--mode", "long"]) == 0
    assert "| x |" not in capsys.readouterr().out
    assert main([str(tmp_path / "none.jsonl")]) == 1
