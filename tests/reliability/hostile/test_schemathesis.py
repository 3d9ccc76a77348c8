"""Schemathesis against the `/openapi.json` a running `statewright serve` publishes: every
check (no 5xx, answers match the documented schemas, status codes, content types and
headers, schema-valid data accepted, invalid data refused), every phase (examples,
coverage, fuzzing, stateful). The repository's schemathesis.toml is the configuration,
so `st run http://127.0.0.1:8080/openapi.json --checks all` from the repository root
runs the same thing by hand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.local.server import BIN, REPO, Server
from tests.reliability.figures import record, scaled

# Long: whole runs end to end (`make test-fast` deselects them with -m "not slow").
pytestmark = pytest.mark.slow


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    max_examples = scaled(8, 100)
    result = subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(REPO / "schemathesis.toml"),
            "--no-color",
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(max_examples),
            "--workers",
            "1",
            "--continue-on-failure",
        ],
        capture_output=True,
        text=True,
        # its cache (.schemathesis/) goes to the test's own folder
        cwd=tmp_path,
        timeout=scaled(240, 1200),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated is not None, output[-2000:]
    assert generated[1] == generated[2]
    log = server.log.read_text()
    assert "Traceback" not in log and '" 500 ' not in log
    record("hostile", inputs=int(generated[1]), schemathesis_cases=int(generated[1]))
