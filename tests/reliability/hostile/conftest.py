"""A real `statewright serve` for the hostile-input suites: the integration fixtures'
specs plus an ``echo`` spec whose Lambda and Terraform tasks hand back what they were
given, with shell-injection payloads in its Terraform variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.local.server import Server

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def payloads(marker: Path) -> dict[str, str]:
    """Strings a shell would run (each would create ``marker``) or Terraform would
    evaluate, were a value ever to reach either as code."""
    return {
        "subst": f"$(touch {marker})",
        "backtick": f"`touch {marker}`",
        "semicolon": f"x; touch {marker}; echo",
        "newline": f"x\ntouch {marker}\n",
        "pipe": f"x | touch {marker} && touch {marker} || touch {marker}",
        "template": '${file("/etc/hostname")}%{ if true }yes%{ endif }',
        "quote": f"\"'; touch {marker}; '\"",
    }


def echo_spec(marker: Path) -> str:
    p = payloads(marker)
    variables = {
        "t_subst": p["subst"],
        "t_template": p["template"],
        "t_list": [p["backtick"], p["newline"]],
    }
    return f"""\
version: 1.0
events: [LAUNCH, DESTROY]
states:
  INIT: {{on: {{LAUNCH: [{{action: advance, state: RUN}}]}}}}
  RUN: {{tasks: [echo, infrastructure], on: {{NEXT: [{{action: advance, state: IDLE}}]}}}}
  IDLE: {{on: {{DESTROY: [{{action: advance, state: DONE}}]}}}}
  DONE: {{terminal: true}}
tasks:
  echo:
    executor: lambda
    config: {{name: echo, args: {json.dumps({"arg": p["subst"]})}}}
    timeout_seconds: 60
  infrastructure:
    executor: terraform
    config:
      action: apply
      source: {{type: local, location: {json.dumps(str(FIXTURES / "echo"))}}}
      variables: {json.dumps(variables)}
    timeout_seconds: 300
"""


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def marker(hostile_root: Path) -> Path:
    """The file every injection payload would create; it must never exist."""
    return hostile_root / "INJECTED"


@pytest.fixture(scope="module")
def server(hostile_root: Path, marker: Path) -> Iterator[Server]:
    from tests.integration.local.server import EXAMPLES
    from tests.integration.local.server import FIXTURES as LOCAL_FIXTURES

    specs = hostile_root / "specs"
    specs.mkdir()
    (specs / "echo.yml").write_text(echo_spec(marker), encoding="utf-8")
    s = Server(hostile_root, specs=[LOCAL_FIXTURES / "specs", EXAMPLES / "specs", specs])
    (s.functions / "echo.py").symlink_to(FIXTURES / "echo.py")
    with s:
        yield s
