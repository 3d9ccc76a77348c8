"""Property tests: whatever the text, the loader and the linter answer with findings and
never with an exception, and every finding is well-formed."""

from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statewright.spec.graph import dot, mermaid
from statewright.spec.lint import LintResult, lint_text
from statewright.spec.loader import load, to_python
from statewright.spec.simulate import simulate

from tests.unit.spec.helpers import BASE

RULES = {
    "yaml-syntax",
    "task-name",
    "duplicate-key",
    "unsupported-version",
    "unknown-key",
    "type",
    "event-name",
    "state-name",
    "duplicate-event",
    "reserved-event",
    "missing-init",
    "no-terminal",
    "unknown-event",
    "unknown-action",
    "advance-target",
    "multiple-advance",
    "unknown-task",
    "duplicate-task",
    "missing-next",
    "executor",
    "lambda-config",
    "terraform-config",
}
WARNINGS = {
    "unreachable-state",
    "unhandled-event",
    "unused-task",
    "no-path-to-terminal",
    "terminal-next",
    "empty-handler",
    "extension",
}
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BASE_DATA: dict[str, Any] = to_python(load(BASE).root)  # type: ignore[arg-type]

YAMLISH = st.lists(
    st.sampled_from([*":-[]{}&*!|>'\"#\n ,?<~%@abcINT_x01.\t", "<<", "on", "NEXT", "  "]),
    max_size=120,
).map("".join)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["INIT", "RUN", "NEXT", "FAILED", "advance", "no-op", "lambda", "yes", "on"]),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=8), children, max_size=3),
    ),
    max_leaves=8,
)


def check(result: LintResult, text: str) -> None:
    # YAML breaks lines at \r and a few Unicode separators too.
    lines = len(re.split("\r\n|\r|\n|\x85|\u2028|\u2029", text))
    for finding in result.findings:
        assert finding.severity in ("error", "warning")
        assert finding.rule in (RULES if finding.severity == "error" else WARNINGS), finding
        assert 1 <= finding.line <= lines + 1, finding
        assert finding.column >= 1
        assert finding.message
    assert (result.spec is None) == bool(result.errors)
    if result.spec is not None:
        # A spec the linter accepts is one every other tool can run.
        assert result.spec.digest.startswith("sha256:")
        mermaid(result.spec)
        dot(result.spec)
        simulate(result.spec, result.spec.events)


@FAST
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    check(lint_text(text, strict=True), text)


@FAST
@given(YAMLISH)
def test_yaml_shaped_noise(text: str) -> None:
    check(lint_text(text), text)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(data: Any, path: tuple[Any, ...], how: str, value: Any, name: str) -> Any:
    if not path:
        return value if how == "replace" else data
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy = dict(data)
        if not rest and how == "delete":
            copy.pop(head, None)
        elif not rest and how == "rename":
            copy[name] = copy.pop(head)
        else:
            copy[head] = _mutate(copy[head], rest, how, value, name)
        return copy
    copy_list = list(data)
    if not rest and how == "delete":
        del copy_list[head]
    elif not rest and how == "rename":
        copy_list.insert(head, copy_list[head])
    else:
        copy_list[head] = _mutate(copy_list[head], rest, how, value, name)
    return copy_list


@FAST
@given(
    st.data(),
    st.sampled_from(["replace", "delete", "rename"]),
    VALUES,
    st.text(min_size=1, max_size=10),
)
def test_mutations_of_a_valid_spec(data: st.DataObject, how: str, value: Any, name: str) -> None:
    path = data.draw(st.sampled_from(_paths(BASE_DATA)))
    mutated = _mutate(BASE_DATA, path, how, value, name)
    text = yaml.safe_dump(mutated, sort_keys=False, allow_unicode=True)
    check(lint_text(text, strict=True), text)


@FAST
@given(
    st.integers(0, BASE.count("\n")),
    st.sampled_from(["drop", "double", "insert"]),
    st.text(max_size=6),
)
def test_line_edits_of_a_valid_spec(line: int, how: str, insert: str) -> None:
    lines = BASE.splitlines(keepends=True)
    index = min(line, len(lines) - 1)
    if how == "drop":
        del lines[index]
    elif how == "double":
        lines.insert(index, lines[index])
    else:
        lines[index] = insert + lines[index]
    text = "".join(lines)
    check(lint_text(text), text)
