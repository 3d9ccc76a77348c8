"""`statewright validate|graph|schema|simulate` as a user runs them: output formats and
the exit codes of docs/spec.md#other-commands (0 clean or warnings, 1 errors, 2 usage or I/O)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from statewright.cli import app
from typer.testing import CliRunner

from tests.unit.spec.helpers import BASE, edit

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "preview.yml"
    path.write_text(BASE)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(edit("    terminal: true\n", "    termnial: true\n"))
    return path


@pytest.fixture
def warned(tmp_path: Path) -> Path:
    path = tmp_path / "warned.yml"
    path.write_text(edit("events: [LAUNCH, DESTROY]\n", "events: [LAUNCH, DESTROY, PAUSE]\n"))
    return path


def test_validate_clean_spec_exits_0_and_prints_no_findings(good: Path) -> None:
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0
    assert result.stdout == ""


def test_validate_prints_findings_in_the_documented_format_and_exits_1(bad: Path) -> None:
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"{bad}:21:5: error: unknown key `termnial`") and "[unknown-key]" in line
        for line in lines
    ), lines
    assert any("did you mean `terminal`?" in line for line in lines)


def test_validate_json_lists_findings_with_every_field(bad: Path) -> None:
    result = runner.invoke(app, ["validate", "--format", "json", str(bad)])
    assert result.exit_code == 1
    findings = json.loads(result.stdout)
    assert {"path", "line", "column", "severity", "rule", "message"} == set(findings[0])
    assert {(f["rule"], f["line"]) for f in findings} >= {("unknown-key", 21)}


def test_warnings_alone_exit_0(warned: Path) -> None:
    result = runner.invoke(app, ["validate", "--format", "json", str(warned)])
    assert result.exit_code == 0
    assert [f["rule"] for f in json.loads(result.stdout)] == ["unhandled-event"]


def test_strict_reports_extensions_as_warnings_and_still_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "ext.yml"
    path.write_text(
        edit("    executor: lambda\n", "    executor: lambda\n    timeout_seconds: 60\n")
    )
    assert json.loads(runner.invoke(app, ["validate", "--format", "json", str(path)]).stdout) == []
    result = runner.invoke(app, ["validate", "--strict", "--format", "json", str(path)])
    assert result.exit_code == 0
    assert [(f["rule"], f["severity"]) for f in json.loads(result.stdout)] == [
        ("extension", "warning")
    ]


def test_several_specs_and_a_folder(good: Path, bad: Path, warned: Path) -> None:
    result = runner.invoke(app, ["validate", "--format", "json", str(good.parent)])
    assert result.exit_code == 1
    assert {Path(f["path"]).name for f in json.loads(result.stdout)} == {bad.name, warned.name}


def test_a_missing_file_exits_2_with_a_message_and_no_traceback(good: Path) -> None:
    result = runner.invoke(app, ["validate", str(good), "nowhere.yml"])
    assert result.exit_code == 2
    assert "nowhere.yml: no such file" in result.stderr
    assert "Traceback" not in result.output


def test_no_argument_is_a_usage_error() -> None:
    assert runner.invoke(app, ["validate"]).exit_code == 2
    assert runner.invoke(app, ["validate", "--format", "xml", "x.yml"]).exit_code == 2


def test_the_repository_specs_are_clean() -> None:
    result = runner.invoke(app, ["validate", "--format", "json", str(ROOT / "specs")])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_graph_mermaid_and_dot(good: Path) -> None:
    mermaid = runner.invoke(app, ["graph", str(good)])
    assert mermaid.exit_code == 0
    assert mermaid.stdout.startswith("stateDiagram-v2\n")
    assert "PROVISION --> RUN : NEXT" in mermaid.stdout
    dot = runner.invoke(app, ["graph", "--format", "dot", str(good)])
    assert dot.exit_code == 0
    assert dot.stdout.startswith('digraph "preview" {')


def test_graph_of_a_broken_spec_shows_the_errors_and_exits_1(bad: Path) -> None:
    result = runner.invoke(app, ["graph", str(bad)])
    assert result.exit_code == 1
    assert "[unknown-key]" in result.stderr
    assert result.stdout == ""


def test_graph_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["graph", str(tmp_path / "none.yml")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")


def test_simulate_walks_the_events(good: Path) -> None:
    result = runner.invoke(app, ["simulate", str(good), "LAUNCH", "DESTROY"])
    assert result.exit_code == 0
    assert "NEXT: PROVISION -> RUN" in result.stdout
    assert "the machine is deleted" in result.stdout


def test_simulate_refused_event_exits_1(good: Path) -> None:
    result = runner.invoke(app, ["simulate", "--format", "json", str(good), "DESTROY"])
    assert result.exit_code == 1
    steps = json.loads(result.stdout)["steps"]
    assert steps[-1]["refused"] == "event_not_accepted"


def test_simulate_fail_option(good: Path) -> None:
    result = runner.invoke(app, ["simulate", str(good), "LAUNCH", "--fail", "db-setup"])
    assert result.exit_code == 0
    assert "task db-setup (lambda) fails" in result.stdout
    unknown = runner.invoke(app, ["simulate", str(good), "LAUNCH", "--fail", "nope"])
    assert unknown.exit_code == 2
    assert "--fail names no task" in unknown.stderr


def test_simulate_advance_shows_what_the_demos_lifecycle_does_in_time() -> None:
    demo = str(ROOT / "examples" / "specs" / "demo.yml")
    result = runner.invoke(app, ["simulate", demo, "LAUNCH", "--advance", "80h"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-6:] == [
        "after 7h: Machine Expiring: expires in 1h",
        "after 7h50m: Machine Expiring: expires in 10m",
        "after 8h: DESTROY sent",
        "  DESTROY: RUN -> TEARDOWN (epoch 4)",
        "    task teardown (terraform) succeeds",
        "  terminal state satisfied: the machine is deleted",
    ]
    as_json = runner.invoke(app, ["simulate", demo, "--at", "9h", "--format", "json"])
    steps = json.loads(as_json.stdout)["steps"]
    assert [(s["event"], s["after"]) for s in steps][-1] == ("(expired)", 8 * 3600)
    bad = runner.invoke(app, ["simulate", demo, "--advance", "80"])
    assert bad.exit_code == 2
    assert "--advance: `80` is not a duration (a bare number has no unit" in bad.stderr
