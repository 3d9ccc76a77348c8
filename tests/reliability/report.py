"""Sums the figures of a reliability run into the markdown docs/reliability.md shows.

    python -m tests.reliability.report [FIGURES.jsonl] [--mode short|long]

Every suite records what it did with tests.reliability.figures.record, one JSON line per
record; this adds up the records of each suite (a ``max_*`` figure or ``threads`` keeps
its largest value, a ``seed`` is not a count and is left out) and prints a table of
headline figures over all suites, then one row per suite with everything it counted."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.reliability.figures import figures_path, load

NOT_COUNTS = frozenset({"suite", "mode", "seed"})
# Headline figure -> the per-suite figures that add up to it.
HEADLINES: dict[str, tuple[str, ...]] = {
    "interleavings explored": ("interleavings",),
    "events and requests": ("events",),
    "state transitions": ("transitions",),
    "version conflicts (retried writes)": ("conflicts",),
    "crashes injected": ("crashes", "kills"),
    "machines recovered": ("machines_recovered", "recovered"),
    "events lost on purpose (then recovered)": ("events_lost",),
    "duplicate deliveries": ("duplicates_delivered", "events_redelivered"),
    "hostile inputs tried": ("inputs",),
    "lost (found by the suites)": ("lost",),
    "doubled (found by the suites)": ("doubled",),
}


def _keeps_max(name: str) -> bool:
    return name.startswith("max_") or name == "threads"


def summarize(records: Iterable[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """suite -> figure -> value, over every record of the suite (and ``records``: how
    many records it wrote)."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in records:
        suite = str(rec["suite"])
        sums[suite]["records"] += 1
        for name, value in rec.items():
            if name in NOT_COUNTS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if _keeps_max(name):
                sums[suite][name] = max(sums[suite][name], value)
            else:
                sums[suite][name] += value
    return {suite: dict(figures) for suite, figures in sorted(sums.items())}


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def markdown(summary: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["| figure | total |", "|---|---:|"]
    for headline, names in HEADLINES.items():
        total = sum(figures.get(n, 0) for figures in summary.values() for n in names)
        lines.append(f"| {headline} | {_number(total)} |")
    lines += ["", "| suite | what it counted |", "|---|---|"]
    for suite, figures in summary.items():
        cells = ", ".join(f"{name} {_number(value)}" for name, value in figures.items())
        lines.append(f"| {suite} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=None)
    parser.add_argument("--mode", choices=["short", "long"], default=None)
    args = parser.parse_args(argv)
    path = args.path or figures_path()
    records = [r for r in load(path) if args.mode is None or r.get("mode") == args.mode]
    if not records:
        print(f"no figures in {path}; run `make reliability` first", file=sys.stderr)
        return 1
    sys.stdout.write(markdown(summarize(records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
