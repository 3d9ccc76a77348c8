"""The installed `statewright` command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_installed_command_exit_codes() -> None:
    command = [str(Path(sys.executable).parent / "statewright")]
    spec = str(ROOT / "specs" / "preview-env.yml")
    ok = subprocess.run([*command, "validate", spec], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(
        [*command, "validate", "missing.yml"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
