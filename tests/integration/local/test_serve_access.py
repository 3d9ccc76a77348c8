"""``statewright serve --access FILE``: a real server process held to the same answers
as the dispatcher on AWS (tests/integration/access_cases.py), its history showing the
actor, and rules that do not fit the specs refused at start."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.access_cases import LOCAL, RULES, run_local_steps
from tests.integration.local.server import REPO, STATEWRIGHT, Server

SPECS = REPO / "specs"


class AccessServer(Server):
    def __init__(self, root: Path, rules_file: Path) -> None:
        super().__init__(root, specs=[SPECS])
        self.rules_file = rules_file

    def argv(self) -> list[str]:
        return [*super().argv(), "--access", str(self.rules_file)]


def rules_file(root: Path, rules: Any) -> Path:
    path = root / "access.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


def test_the_rules_answer_as_on_aws(tmp_path: Path) -> None:
    with AccessServer(tmp_path, rules_file(tmp_path, RULES)) as server:

        def call(method: str, path: str, body: Any) -> tuple[int, Any]:
            answer = server.request(method, path, body)
            return answer.status, answer.body

        answers = run_local_steps(call)
        assert answers[6] == (202, ("pr-1", "preview-env", "PROVISION"))
        listed = server.request("GET", "/machines?limit=1")
        ids: list[str] = []
        while True:
            assert listed.status == 200
            ids += [m["id"] for m in listed.body["machines"]]
            token = listed.body["next_token"]
            if token is None:
                break
            listed = server.request("GET", f"/machines?limit=1&next_token={token}")
        # t-1 and pr-tenant exist, but local may not read them
        assert sorted(ids) == ["pr-1", "pr-3"]
        history = subprocess.run(
            [STATEWRIGHT, "machines", "history", "pr-1", "--endpoint", server.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "event LAUNCH from api by local" in history
        assert "INIT -> PROVISION on LAUNCH by local" in history


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ([{"specs": ["preview"]}], "access[0].specs: no spec named 'preview'"),
        ([{"specs": ["preview-env"], "events": ["OFFBOARD"]}], "access[0].events: 'OFFBOARD'"),
        ([{"principal": [LOCAL]}], "access[0].principal is not a rule field"),
        ("not json", "not valid JSON"),
    ],
)
def test_rules_that_do_not_fit_are_refused_at_start(tmp_path: Path, rules: Any, says: str) -> None:
    path = tmp_path / "access.json"
    path.write_text(rules if isinstance(rules, str) else json.dumps(rules), encoding="utf-8")
    argv = [STATEWRIGHT, "serve", "--port", "0", "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(
        [*argv, "--specs", str(SPECS), "--access", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert says in done.stderr
    assert "Traceback" not in done.stderr
