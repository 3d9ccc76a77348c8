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


def access_server(root: Path, rules: Any, *args: str) -> Server:
    path = root / "access.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    return Server(root, specs=[SPECS], args=["--access", str(path), *args])


def test_the_rules_answer_as_on_aws(tmp_path: Path) -> None:
    with access_server(tmp_path, RULES) as server:

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


TOKEN_RULES = [
    {
        "principals": ["ci-*"],
        "actions": ["create", "send", "read"],
        "specs": ["preview-env"],
        "events": ["LAUNCH", "DESTROY"],
        "machines": ["pr-*"],
    },
    {"principals": ["*@platform"], "specs": ["tenant-lifecycle"]},
    {"principals": ["*@platform"], "actions": ["read"]},
]


def test_token_names_are_the_principals(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ci-github ci-token-0123456789abcdef\nana@platform ana-token-0123456789\n")
    tokens.chmod(0o600)
    with access_server(tmp_path, TOKEN_RULES, "--token-file", str(tokens)) as server:

        def as_(token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
            server.token = token
            answer = server.request(method, path, body)
            return answer.status, answer.body

        ci, ana = "ci-token-0123456789abcdef", "ana-token-0123456789"
        assert (
            as_(ci, "POST", "/machines/pr-5/events", {"event": "LAUNCH", "spec": "preview-env"})[0]
            == 202
        )
        assert as_(ana, "POST", "/machines", {"spec": "tenant-lifecycle", "id": "acme"})[0] == 201
        status, body = as_(ci, "POST", "/machines/acme/events", {"event": "OFFBOARD"})
        assert (status, body["error"]["message"]) == (
            403,
            "ci-github may not send OFFBOARD to machine acme: no access rule allows it",
        )
        assert as_(ci, "GET", "/machines/acme")[0] == 403
        assert as_(ana, "POST", "/machines/pr-5/events", {"event": "DESTROY"})[0] == 403
        assert [m["id"] for m in as_(ci, "GET", "/machines")[1]["machines"]] == ["pr-5"]
        assert sorted(m["id"] for m in as_(ana, "GET", "/machines")[1]["machines"]) == [
            "acme",
            "pr-5",
        ]
        entries = as_(ana, "GET", "/machines/pr-5/history")[1]["entries"]
        assert [(e["kind"], e["actor"]) for e in entries[:2]] == [
            ("created", "ci-github"),
            ("event", "ci-github"),
        ]


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
