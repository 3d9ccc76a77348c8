"""What the crash suite counts: every start of a task run, with the control plane (pid)
that started it.

- Lambda runs: the ``note`` function (fixtures/note.py) appends ``start``/``end`` lines.
- Terraform runs: ``--terraform-bin`` is a small Python wrapper that appends one JSON line
  per call (working directory, sub-command, control plane pid) and then execs the real
  binary. The working directory names the run: ``<data>/terraform/<machine>/<source>/
  runs/<epoch>-<task>-<attempt>-<random>``.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.integration.local.server import TERRAFORM

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_RUN_DIR = re.compile(r"^(\d+)-(.+)-(\d+)-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Start:
    """One start of one attempt: (machine, epoch, task, attempt) by control plane ``pid``;
    ``step`` is the Terraform sub-command (``note`` for the lambda task)."""

    machine: str
    epoch: int
    task: str
    attempt: int
    pid: int
    step: str

    @property
    def attempt_key(self) -> tuple[str, int, str, int]:
        return (self.machine, self.epoch, self.task, self.attempt)


def write_terraform_wrapper(folder: Path, log: Path) -> Path:
    """An executable that logs its call to ``log`` and becomes the real terraform."""
    wrapper = folder / "terraform-logged"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps([os.getcwd(), sys.argv[1:2],"
        " os.environ.get('STATEWRIGHT_PARENT_PID')]) + '\\n')\n"
        f"os.execv({TERRAFORM!r}, [{TERRAFORM!r}, *sys.argv[1:]])\n",
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


def lambda_starts(runs_file: Path) -> list[Start]:
    if not runs_file.exists():
        return []
    starts = []
    for line in runs_file.read_text().splitlines():
        kind, machine, epoch, task, attempt, pid = line.split()
        if kind == "start":
            starts.append(Start(machine, int(epoch), task, int(attempt), int(pid), "note"))
    return starts


def terraform_starts(log: Path) -> list[Start]:
    if not log.exists():
        return []
    starts = []
    for line in log.read_text().splitlines():
        cwd, args, pid = json.loads(line)
        run_dir = Path(cwd)
        match = _RUN_DIR.match(run_dir.name)
        assert match is not None and run_dir.parent.name == "runs", cwd
        machine = run_dir.parents[2].name
        epoch, task, attempt = int(match[1]), match[2], int(match[3])
        starts.append(Start(machine, epoch, task, attempt, int(pid), args[0] if args else ""))
    return starts


def doubled_in_one_life(starts: list[Start]) -> list[Start]:
    """Starts of one attempt's step repeated by the same control plane: a duplicate
    delivery or a double start, never explained by a crash."""
    counts = Counter(starts)
    return [start for start, n in counts.items() if n > 1]
