"""Rule `task-name`: a task name never forms a path, so no file of a run (logs, Terraform
working directories, all named after the task) can land outside the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from statewright.catalog import SpecCatalog
from statewright.errors import ConfigurationError

from tests.unit.spec.helpers import BASE, edit, lint


def renamed(name: str) -> str:
    text = edit("tasks: [db-setup]", f"tasks: [{name!r}]")
    return edit("  db-setup:\n", f"  {name!r}:\n", text)


@pytest.mark.parametrize(
    "name",
    ["x/../../tmp/escape", "..", "a.b", "a b", "-lead", "_lead", "é", "a" * 65, "a\\b"],
)
def test_a_name_that_could_form_a_path_is_an_error(name: str) -> None:
    result = lint(renamed(name))
    findings = [f for f in result.findings if f.rule == "task-name"]
    assert [f.severity for f in findings] == ["error"], result.findings
    assert findings[0].line == BASE.splitlines().index("  db-setup:") + 1
    assert "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$" in findings[0].message
    assert result.spec is None


@pytest.mark.parametrize("name", ["db-setup", "A_1", "x" * 64, "7zip"])
def test_names_of_letters_digits_dash_and_underscore_pass(name: str) -> None:
    assert "task-name" not in {f.rule for f in lint(renamed(name)).findings}


def test_a_spec_with_such_a_name_is_never_loaded(tmp_path: Path) -> None:
    (tmp_path / "escape.yml").write_text(renamed("x/../../tmp/escape"))
    with pytest.raises(ConfigurationError, match="task-name"):
        SpecCatalog.from_folders([tmp_path])
