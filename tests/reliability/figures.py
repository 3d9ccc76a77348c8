"""Figures the reliability suites report, gathered for docs/reliability.md.

Every suite records what it did (interleavings, events, conflicts, crashes, recoveries,
hostile inputs) with `record`; `python -m tests.reliability.report` sums the records of a
run into the table docs/reliability.md shows. Records are JSON lines appended to one file,
so pytest-xdist workers can write side by side; each test session starts the file afresh
(tests/conftest.py), so it holds the figures of one run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

FIGURES_ENV = "STATEWRIGHT_FIGURES"
MODE_ENV = "STATEWRIGHT_RELIABILITY"
DEFAULT_FIGURES = Path(__file__).resolve().parents[2] / ".reliability" / "figures.jsonl"


def long_run() -> bool:
    """`make reliability` sets STATEWRIGHT_RELIABILITY=long; `make test` runs the short runs."""
    return os.environ.get(MODE_ENV, "short") == "long"


def scaled(short: int, long: int) -> int:
    """The size of a run: `short` in `make test`, `long` in `make reliability`."""
    return long if long_run() else short


def figures_path() -> Path:
    return Path(os.environ.get(FIGURES_ENV, str(DEFAULT_FIGURES)))


def start_run() -> None:
    """Forget the previous run's figures."""
    figures_path().unlink(missing_ok=True)


def record(suite: str, **figures: int | float | str) -> None:
    """Append one suite's figures (counts add up across records of the same suite)."""
    path = figures_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"suite": suite, "mode": "long" if long_run() else "short", **figures})
    # One write of one line with O_APPEND: xdist workers never interleave inside a line.
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def load(path: Path | None = None) -> list[Mapping[str, object]]:
    source = path or figures_path()
    if not source.exists():
        return []
    return [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
