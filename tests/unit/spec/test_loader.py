"""The YAML loader: positions, YAML 1.2 scalars, anchors and merges, duplicate keys, and
the guards against documents built to hurt (alias bombs, deep nesting, huge files)."""

from __future__ import annotations

import math
import textwrap
import time

import pytest
from statewright.spec.lint import lint_text
from statewright.spec.loader import MAX_BYTES, MAX_DEPTH, MappingNode, load, load_bytes, to_python

from tests.unit.spec.helpers import BASE, edit


def data(text: str) -> object:
    loaded = load(textwrap.dedent(text))
    assert loaded.findings == [], loaded.findings
    assert loaded.root is not None
    return to_python(loaded.root)


def only_finding(text: str) -> tuple[int, str, str]:
    loaded = load(textwrap.dedent(text))
    assert len(loaded.findings) == 1, loaded.findings
    f = loaded.findings[0]
    return f.line, f.rule, f.message


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("no", "no"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("1", 1),
        ("1.0", 1.0),
        ("0x1f", 31),
        ("0o17", 15),
        ("017", 17),  # YAML 1.1 read this as octal 15
        ("1_000", "1_000"),  # YAML 1.1 read this as 1000
        ("12:30", "12:30"),  # YAML 1.1 read this as sexagesimal 750
        ("2024-01-01", "2024-01-01"),  # no timestamps in the core schema
        ("'1.0'", "1.0"),
        ('"true"', "true"),
        ("!!str 12", "12"),
        ("!!float 1", 1.0),
        ("! yes", "yes"),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(scalar: str, value: object) -> None:
    assert data(f"key: {scalar}\n") == {"key": value}


def test_special_floats() -> None:
    loaded = data("a: .inf\nb: -.Inf\nc: .nan\n")
    assert isinstance(loaded, dict)
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])


def test_on_is_a_key_not_a_boolean() -> None:
    assert data("on: {LAUNCH: []}\n") == {"on": {"LAUNCH": []}}


def test_nodes_know_their_line_and_column() -> None:
    loaded = load("a:\n  b: [1, {c: x}]\n")
    root = loaded.root
    assert isinstance(root, MappingNode)
    inner = root.get("a")
    assert isinstance(inner, MappingNode)
    key, value = inner.pairs[0]
    assert (key.line, key.column) == (2, 3)
    assert (value.line, value.column) == (2, 6)


def test_anchors_and_aliases_share_content() -> None:
    assert data(
        """\
        x-actions: &go [{action: advance, state: RUN}]
        a: *go
        b: *go
        """
    ) == {
        "x-actions": [{"action": "advance", "state": "RUN"}],
        "a": [{"action": "advance", "state": "RUN"}],
        "b": [{"action": "advance", "state": "RUN"}],
    }


def test_merge_keys_merge_and_a_key_beside_a_merge_overrides_it() -> None:
    assert data(
        """\
        x-shared: &shared
          ACCESS: [{action: no-op}]
          DESTROY: [{action: advance, state: TEARDOWN}]
        on:
          <<: *shared
          DESTROY: [{action: advance, state: ARCHIVE}]
        """
    ) == {
        "x-shared": {
            "ACCESS": [{"action": "no-op"}],
            "DESTROY": [{"action": "advance", "state": "TEARDOWN"}],
        },
        "on": {
            "DESTROY": [{"action": "advance", "state": "ARCHIVE"}],
            "ACCESS": [{"action": "no-op"}],
        },
    }


def test_a_list_of_merges_gives_precedence_to_the_first() -> None:
    assert data(
        """\
        a: &a {k: from-a, only-a: 1}
        b: &b {k: from-b, only-b: 2}
        c:
          <<: [*a, *b]
        """
    )["c"] == {"k": "from-a", "only-a": 1, "only-b": 2}  # type: ignore[index]


def test_a_quoted_merge_key_is_an_ordinary_key() -> None:
    assert data("a: {'<<': 1}\n") == {"a": {"<<": 1}}


def test_merging_a_scalar_is_refused() -> None:
    line, rule, message = only_finding("a: &x 1\nb:\n  <<: *x\n")
    assert (line, rule) == (3, "yaml-syntax")
    assert "mapping" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", 3),
        ("s:\n  X: 1\n  Y: 2\n  X: 3\n", 4),
        ("s: {X: 1, X: 2}\n", 1),
        ("s:\n  <<: {X: 1}\n  <<: {Y: 1}\n", 3),
    ],
)
def test_duplicate_keys_are_refused_at_the_second_one(text: str, line: int) -> None:
    found_line, rule, _ = only_finding(text)
    assert (found_line, rule) == (line, "duplicate-key")


def test_a_duplicate_inside_an_anchor_is_reported_once_even_when_merged_twice() -> None:
    text = BASE + "x-shared: &s {A: 1, A: 2}\nx-one: {<<: *s}\nx-two: {<<: *s}\n"
    result = lint_text(text)
    assert [f.rule for f in result.findings] == ["duplicate-key"]


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 10):
        prev = f"*a{n - 1}"
        lines.append(f"a{n}: &a{n} [{', '.join([prev] * 9)}]")
    started = time.monotonic()
    loaded = load("\n".join(lines) + "\n")
    assert time.monotonic() - started < 2
    assert loaded.root is None
    assert [f.rule for f in loaded.findings] == ["yaml-syntax"]
    assert "aliases" in loaded.findings[0].message


def test_a_recursive_alias_is_refused() -> None:
    line, rule, message = only_finding("a: &a [1, *a]\n")
    assert (line, rule) == (1, "yaml-syntax")
    assert "contains it" in message


def test_deep_nesting_is_refused() -> None:
    depth = MAX_DEPTH + 5
    loaded = load("a: " + "[" * depth + "]" * depth + "\n")
    assert loaded.root is None
    assert loaded.findings[0].rule == "yaml-syntax"
    assert "nesting" in loaded.findings[0].message


def test_nesting_within_the_limit_is_fine() -> None:
    depth = MAX_DEPTH - 2
    loaded = load("a: " + "[" * depth + "]" * depth + "\n")
    assert loaded.findings == []


def test_a_huge_file_is_refused_without_parsing() -> None:
    text = "a: " + "x" * (MAX_BYTES + 1) + "\n"
    loaded = load(text)
    assert loaded.root is None
    assert "larger than" in loaded.findings[0].message
    assert load_bytes(text.encode(), "big.yml").findings[0].rule == "yaml-syntax"


def test_bytes_that_are_not_utf8_are_a_finding_on_their_line() -> None:
    loaded = load_bytes(b"a: 1\nb: \xff\n", "x.yml")
    assert [(f.line, f.rule) for f in loaded.findings] == [(2, "yaml-syntax")]


def test_a_utf8_bom_is_accepted() -> None:
    loaded = load_bytes("\ufeffa: 1\n".encode(), "x.yml")
    assert loaded.findings == []


@pytest.mark.parametrize(
    "text",
    [
        "a: \x00\n",
        "a: \ud800\n",
        "a: !!binary aGk=\n",
        "a: !Ref x\n",
        "a: !!int x\n",
        "!!set {a}\n",
    ],
)
def test_odd_input_gives_findings_not_exceptions(text: str) -> None:
    loaded = load(text)
    assert loaded.findings
    assert all(f.rule == "yaml-syntax" for f in loaded.findings)


def test_the_line_of_a_syntax_error() -> None:
    line, rule, _ = only_finding("a: 1\nb: [1, 2\nc: 3\n")
    assert rule == "yaml-syntax"
    assert line in (2, 3)


def test_a_spec_written_with_merges_lints_clean() -> None:
    text = "x-leave: &leave\n  DESTROY: [{action: advance, state: TEARDOWN}]\n" + edit(
        "      DESTROY:\n        - action: advance\n          state: TEARDOWN\n",
        "      <<: *leave\n",
    )
    result = lint_text(text)
    assert result.findings == []
    assert result.spec is not None
    assert result.spec.states["RUN"].on["DESTROY"][0].state == "TEARDOWN"
