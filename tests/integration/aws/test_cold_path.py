"""The dispatcher's import path stays light: no CLI libraries ever, and nothing that
only some events need (the HTTP resolver, pydantic-settings, the X-Ray SDK, the YAML
loader) before an event needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("dispatcher", "functions/dispatcher/handler.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""


def test_importing_the_dispatcher_loads_no_cli_and_nothing_deferred() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "statewright" in loaded and "boto3" in loaded
    for heavy in ("typer", "rich", "click", "yaml", "pydantic_settings", "aws_xray_sdk"):
        assert heavy not in loaded, heavy
    modules = subprocess.run(
        [sys.executable, "-c", PROBE.replace('m.split(".")[0]', "m")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    full = set(json.loads(modules.stdout))
    assert "statewright.api" not in full and "statewright.cli" not in full
    assert "statewright.executors.builtin" not in full
