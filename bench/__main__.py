"""``python -m bench`` (``make bench``): every benchmark in one run, then
``bench/results.json`` and ``docs/benchmarks.md`` (rendered from the results).

    python -m bench                 # everything, the committed figures
    python -m bench --only engine   # one benchmark, printed, nothing written
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
DOC = REPO / "docs" / "benchmarks.md"
WORK = REPO / "bench" / ".work"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """The handlers log and emit metrics on stdout, as Lambda wants; not here."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _cost(workdir: Path) -> dict[str, Any]:
    from bench import cost, template

    _say("cost: synthesizing the CDK app for the table and the functions' memory")
    facts = template.from_template()
    _say("cost: synthesizing it again with api.type http (the HTTP API option)")
    http_facts = template.from_template(api_type="http")
    _say("cost: lifecycles of preview-env through the dispatcher under moto")
    with _stdout_silenced():
        return cost.run(facts, http_facts=http_facts)


def _cold_start(workdir: Path) -> dict[str, Any]:
    from bench import cold_start

    return cold_start.run()


def _local_http(workdir: Path) -> dict[str, Any]:
    from bench import local_http

    return local_http.run(workdir)


def _scaling(workdir: Path) -> dict[str, Any]:
    from bench import scaling

    return scaling.run(workdir)


def _engine(workdir: Path) -> dict[str, Any]:
    from bench import engine

    return engine.run(workdir)


def _reconciler(workdir: Path) -> dict[str, Any]:
    from bench import reconciler

    _say("reconciler: one run over 100 and over 100,000 idle machines under moto")
    with _stdout_silenced():
        return reconciler.run()


BENCHMARKS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "cold_start": _cold_start,
    "engine": _engine,
    "scaling": _scaling,
    "local_http": _local_http,
    "cost": _cost,
    "reconciler": _reconciler,
}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _meta(command: str, started: float) -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": command,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load_average_at_end": list(load) if load else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark, print it")
    parser.add_argument("--command", default="make bench", help="how the run was started")
    args = parser.parse_args(argv)
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    names = [args.only] if args.only else list(BENCHMARKS)
    results: dict[str, Any] = {}
    try:
        for name in names:
            _say(f"{name} ...")
            began = time.perf_counter()
            results[name] = BENCHMARKS[name](workdir)
            _say(f"{name} done in {time.perf_counter() - began:.1f}s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.only:
        print(json.dumps(results, indent=2))
        return 0
    results = {"meta": _meta(args.command, started), **results}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(report.render(results))
    seconds = results["meta"]["seconds"]
    _say(f"wrote {RESULTS.relative_to(REPO)} and {DOC.relative_to(REPO)} in {seconds}s")
    for line in report.goal_lines(results):
        _say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
