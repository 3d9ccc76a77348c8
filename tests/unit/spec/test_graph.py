"""`statewright graph`: Mermaid stateDiagram-v2 and DOT, read back by small parsers that
follow the two languages' grammars (Mermaid's jison lexer rules for state diagrams,
the DOT language's statement grammar), so a diagram that would not render fails here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from statewright.spec.graph import dot, mermaid
from statewright.spec.lint import lint_file, lint_text
from statewright.spec.models import Spec

SPECS = Path(__file__).resolve().parents[3] / "specs"

# Mermaid's state-diagram lexer (case-insensitive) tries these before an identifier.
MERMAID_KEYWORD = re.compile(
    r"^(default|note\s|state\s|class\s|classdef\s|scale\s|hide empty description|acctitle|accdescr"
    r"|.*direction\s+(tb|bt|rl|lr))",
    re.IGNORECASE,
)
MERMAID_ID = r"(?:\[\*\]|[^:\s\-{\"]+)"
DESCR = r"[^:\n;]+"


@dataclass
class MermaidDiagram:
    declared: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, list[str]] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)

    def name(self, node_id: str) -> str:
        return self.labels.get(node_id, node_id)


def parse_mermaid(text: str) -> MermaidDiagram:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "stateDiagram-v2"
    diagram = MermaidDiagram()
    for line in lines[1:]:
        if m := re.fullmatch(rf'state "([^"]*)" as ({MERMAID_ID})', line):
            diagram.labels[m[2]] = m[1]
            diagram.declared.add(m[2])
            continue
        assert not MERMAID_KEYWORD.match(line), f"Mermaid would read a keyword in {line!r}"
        if m := re.fullmatch(rf"({MERMAID_ID}) --> ({MERMAID_ID})(?: : ({DESCR}))?", line):
            for node_id in (m[1], m[2]):
                assert node_id == "[*]" or node_id in diagram.declared, f"undeclared {node_id}"
            diagram.edges.add((m[1], m[2], (m[3] or "").strip()))
        elif m := re.fullmatch(rf"({MERMAID_ID}) : ({DESCR})", line):
            assert m[1] in diagram.declared
            diagram.descriptions.setdefault(m[1], []).append(m[2].strip())
        elif re.fullmatch(MERMAID_ID, line):
            assert not MERMAID_KEYWORD.match(line)
            diagram.declared.add(line)
        else:
            raise AssertionError(f"not a stateDiagram-v2 statement: {line!r}")
    return diagram


def expected_edges(spec: Spec) -> set[tuple[str, str, str]]:
    edges = {("[*]", "INIT", "")}
    for name, state in spec.states.items():
        for event, actions in state.on.items():
            for action in actions:
                if action.action == "advance" and action.state:
                    edges.add((name, action.state, event))
        if state.terminal:
            edges.add((name, "[*]", ""))
    return edges


def event_of(label: str) -> str:
    """An edge label's event, without what else sends it (`DESTROY (expiry)`)."""
    return label.split(" (", maxsplit=1)[0]


def named_edges(diagram: MermaidDiagram) -> set[tuple[str, str, str]]:
    return {(diagram.name(a), diagram.name(b), event_of(label)) for a, b, label in diagram.edges}


TRICKY = """\
version: 1.0
events: [GO, DEFAULT, STOP]
states:
  INIT: {on: {GO: [{action: advance, state: NOTE}], STOP: [{action: no-op}]}}
  NOTE: {tasks: [db-setup_now, say-hi], on: {NEXT: [{action: advance, state: DEFAULT_ENV}]}}
  DEFAULT_ENV: {on: {DEFAULT: [{action: advance, state: A-B}]}}
  A-B: {on: {GO: [{action: advance, state: A_B}]}}
  A_B: {on: {GO: [{action: advance, state: STATE}]}}
  STATE: {terminal: true}
tasks:
  db-setup_now: {executor: lambda, config: {name: db-setup}}
  say-hi: {executor: lambda, config: {name: say-hi}}
"""
# (Task names with `:`, `;` or quotes were tricky too; rule `task-name` refuses them now.)


def tricky_spec() -> Spec:
    result = lint_text(TRICKY, path="tricky.yml")
    assert result.spec is not None, [f.format() for f in result.findings]
    return result.spec


def all_specs() -> list[Spec]:
    specs = []
    for path in sorted(SPECS.glob("*.yml")):
        result = lint_file(path)
        assert result.spec is not None, [f.format() for f in result.findings]
        specs.append(result.spec)
    return [*specs, tricky_spec()]


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_mermaid_parses_and_has_every_transition(spec: Spec) -> None:
    diagram = parse_mermaid(mermaid(spec))
    assert {diagram.name(i) for i in diagram.declared} == set(spec.states)
    assert named_edges(diagram) == expected_edges(spec)


def test_mermaid_of_the_seed_example_shows_tasks_on_states() -> None:
    spec = lint_file(SPECS / "preview-env.yml").spec
    assert spec is not None
    diagram = parse_mermaid(mermaid(spec))
    assert diagram.descriptions["PROVISION"] == ["task db-setup (lambda)"]
    assert diagram.descriptions["TEARDOWN"] == ["task db-teardown (terraform)"]
    assert ("TEARDOWN", "[*]", "") in diagram.edges


def test_mermaid_renames_states_its_lexer_would_misread() -> None:
    diagram = parse_mermaid(mermaid(tricky_spec()))
    assert "NOTE" not in diagram.declared and diagram.labels
    assert any("no-op on STOP" in d for d in diagram.descriptions[_id_of(diagram, "INIT")])


def _id_of(diagram: MermaidDiagram, name: str) -> str:
    return next(i for i in diagram.declared if diagram.name(i) == name)


# -- DOT

DOT_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<id>[A-Za-z_][A-Za-z0-9_.]*|-?\d+(?:\.\d+)?)|(?P<op>->|[{}\[\];,=]))'
)


def dot_tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = DOT_TOKEN.match(text, pos)
        assert m, f"cannot tokenize DOT at {text[pos : pos + 30]!r}"
        tokens.append(m.group(m.lastgroup or "op"))
        pos = m.end()
    return tokens


def unquote(token: str) -> str:
    if token.startswith('"'):
        return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], token[1:-1])
    return token


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], set[tuple[str, str, str]]]:
    """Nodes with attributes and labelled edges of a ``digraph``; asserts the grammar
    (graph : digraph ID { stmt_list }, stmt : node_stmt | edge_stmt | attr_stmt | ID=ID)."""
    t = dot_tokens(text)
    assert t[0] == "digraph" and t[2] == "{" and t[-1] == "}"
    i, body = 3, t[3:-1]
    nodes: dict[str, dict[str, str]] = {}
    edges: set[tuple[str, str, str]] = set()
    i = 0

    def attrs(j: int) -> tuple[dict[str, str], int]:
        found: dict[str, str] = {}
        if j < len(body) and body[j] == "[":
            j += 1
            while body[j] != "]":
                key, eq, value = body[j], body[j + 1], body[j + 2]
                assert eq == "=", body[j : j + 3]
                found[key] = unquote(value)
                j += 3
                if body[j] == ",":
                    j += 1
            j += 1
        return found, j

    while i < len(body):
        first = body[i]
        if first in ("node", "edge", "graph"):
            _, i = attrs(i + 1)
        elif body[i + 1] == "=":
            i += 3
        elif body[i + 1] == "->":
            a, b = unquote(first), unquote(body[i + 2])
            found, i = attrs(i + 3)
            edges.add((a, b, found.get("label", "")))
        else:
            found, i = attrs(i + 1)
            nodes[unquote(first)] = found
        assert body[i] == ";", body[i:]
        i += 1
    return nodes, edges


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_dot_parses_and_has_every_transition(spec: Spec) -> None:
    nodes, edges = parse_dot(dot(spec))
    assert set(nodes) == {*spec.states, "[*]"}
    assert {(a, b, event_of(label)) for a, b, label in edges} == {
        e for e in expected_edges(spec) if e[1] != "[*]"
    }
    for name, state in spec.states.items():
        label = nodes[name]["label"].split("\n")
        assert label[0] == name
        assert [line for line in label if line.startswith("task ")] == [
            f"task {t} ({spec.tasks[t].executor})" for t in state.tasks
        ]
        assert ("peripheries" in nodes[name]) == state.terminal


def test_tasks_show_in_the_order_they_start() -> None:
    from tests.unit.spec.test_task_graph_rules import GRAPH

    result = lint_text(GRAPH, path="graph.yml")
    assert result.spec is not None
    text = mermaid(result.spec)
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("PROVISION :")]
    assert lines == [
        "PROVISION : task db (lambda)",
        "PROVISION : task app (terraform) after db",
        "PROVISION : task smoke (lambda) after app",
    ]


def test_expiry_and_schedules_show_on_states_and_edges() -> None:
    from tests.unit.spec.test_time_rules import TIMED

    result = lint_text(TIMED, path="timed.yml")
    assert result.spec is not None
    diagram = parse_mermaid(mermaid(result.spec))
    assert diagram.descriptions["INIT"] == [
        "expires after 3d (at most 7d) with DESTROY",
        "warned 1d, 1h before",
        "extended by MARK_ACCESS",
    ]
    # The schedule lists RUN, which handles SLEEP; `hourly` reaches every state that
    # handles MARK_ACCESS (RUN only).
    assert diagram.descriptions["RUN"] == [
        "no-op on SLEEP, MARK_ACCESS",
        "schedule nightly-sleep sends SLEEP at 0 19 * * MON-FRI (Europe/Berlin)",
        "schedule hourly sends MARK_ACCESS at 0 * * * * (UTC)",
    ]
    assert ("RUN", "TEARDOWN", "DESTROY (expiry)") in diagram.edges
    nodes, edges = parse_dot(dot(result.spec))
    assert ("RUN", "TEARDOWN", "DESTROY (expiry)") in edges
    assert "schedule hourly sends MARK_ACCESS" in nodes["RUN"]["label"]
