"""Rules `needs`, `reference` and `next-cycle`: a spec that trips each (at the marked
line) and a close one that does not; every rule id is documented in docs/spec.md."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from statewright.spec.rules import ERROR_RULES, WARNING_RULES

from tests.unit.spec.helpers import edit, lint, marked_lines, rule_lines

DOCS = Path(__file__).resolve().parents[3] / "docs" / "spec.md"

GRAPH = textwrap.dedent(
    """\
    version: 1.0
    events: [LAUNCH, DESTROY]
    states:
      INIT:
        on:
          LAUNCH: [{action: advance, state: PROVISION}]
      PROVISION:
        tasks: [db, app, smoke]
        on:
          NEXT: [{action: advance, state: RUN}]
      RUN:
        on:
          DESTROY: [{action: advance, state: TEARDOWN}]
      TEARDOWN:
        terminal: true
        tasks: [teardown]
    tasks:
      db:
        executor: lambda
        config: {name: db, args: {env: "${{ machine.id }}-${{ metadata.team }}"}}
      app:
        executor: terraform
        needs: [db]
        config:
          action: apply
          source: {type: local, location: app}
          variables:
            db_host: "${{ tasks.db.outputs.endpoint.host }}"
            db_port: "${{ tasks.db.outputs.endpoint.port }}"
      smoke:
        executor: lambda
        needs: [app]
        config: {name: smoke, args: {url: "https://${{ tasks.db.outputs.endpoint.host }}/"}}
      teardown:
        executor: terraform
        config:
          action: destroy
          source: {type: local, location: app}
          variables: {db_host: "${{ tasks.db.outputs.endpoint.host }}"}
    """
)

CASES = {
    "needs/unknown-task": (
        "needs",
        edit("    needs: [db]\n", "    needs: [dbb] #!\n", GRAPH),
    ),
    "needs/itself": (
        "needs",
        edit("    needs: [app]\n", "    needs: [smoke] #!\n", GRAPH),
    ),
    "needs/cycle": (
        "needs",
        edit(
            "  db:\n    executor: lambda\n",
            "  db:\n    executor: lambda\n    needs: [smoke] #!\n",
            GRAPH,
        ),
    ),
    "needs/not-a-list": (
        "type",
        edit("    needs: [db]\n", "    needs: db #!\n", GRAPH),
    ),
    "reference/syntax": (
        "reference",
        edit(
            '{env: "${{ machine.id }}-${{ metadata.team }}"}}\n',
            '{env: "${{ machine.id | lower }}"}} #!\n',
            GRAPH,
        ),
    ),
    "reference/unclosed": (
        "reference",
        edit(
            '{env: "${{ machine.id }}-${{ metadata.team }}"}}\n',
            '{env: "${{ machine.id"}} #!\n',
            GRAPH,
        ),
    ),
    "reference/unknown-task": (
        "reference",
        edit(
            '    db_port: "${{ tasks.db.outputs.endpoint.port }}"\n',
            '    db_port: "${{ tasks.dbb.outputs.endpoint.port }}" #!\n',
            GRAPH,
        ),
    ),
    "reference/same-state-not-needed": (
        "reference",
        edit(
            '/"}}\n',
            '/"}} #!\n',
            edit("    needs: [app]\n", "    needs: []\n", GRAPH),
        ),
    ),
    "next-cycle": (
        "next-cycle",
        edit(
            "  RUN:\n    on:\n      DESTROY: [{action: advance, state: TEARDOWN}]\n",
            "  RUN: #!\n    on:\n      DESTROY: [{action: advance, state: TEARDOWN}]\n"
            "      NEXT: [{action: advance, state: IDLE}]\n"
            "  IDLE:\n    on:\n      NEXT: [{action: advance, state: RUN}]\n"
            "      DESTROY: [{action: advance, state: TEARDOWN}]\n",
            GRAPH,
        ),
    ),
    "next-cycle/self": (
        "next-cycle",
        edit(
            "  RUN:\n    on:\n",
            "  RUN: #!\n    on:\n      NEXT: [{action: advance, state: RUN}]\n",
            GRAPH,
        ),
    ),
}


def test_the_graph_spec_is_clean() -> None:
    result = lint(GRAPH)
    assert result.findings == [], [f.format() for f in result.findings]
    assert result.spec is not None
    assert result.spec.tasks["smoke"].needs == ["app"]
    assert result.spec.task_order("PROVISION") == [["db"], ["app"], ["smoke"]]


@pytest.mark.parametrize(("rule", "text"), CASES.values(), ids=CASES.keys())
def test_graph_rule_fires_at_the_marked_line(rule: str, text: str) -> None:
    result = lint(text)
    found = rule_lines(result, rule)
    assert set(found) & set(marked_lines(text)), [f.format() for f in result.findings]
    assert result.spec is None


def test_a_reference_through_others_needs_no_direct_need() -> None:
    # smoke needs app, app needs db: smoke may read db's output.
    assert lint(GRAPH).errors == []


def test_a_reference_to_another_states_task_needs_no_need() -> None:
    # teardown reads db's output from PROVISION; it never runs beside it.
    result = lint(GRAPH)
    assert "reference" not in {f.rule for f in result.findings}


def test_a_need_that_never_shares_a_state_is_a_warning() -> None:
    text = edit(
        "  teardown:\n    executor: terraform\n",
        "  teardown:\n    executor: terraform\n    needs: [db] #!\n",
        GRAPH,
    )
    result = lint(text)
    warnings = [f for f in result.findings if f.rule == "needs"]
    assert [f.severity for f in warnings] == ["warning"]
    assert warnings[0].line in marked_lines(text)
    assert result.spec is not None


def test_a_state_with_a_task_breaks_a_next_cycle() -> None:
    text = edit(
        "  RUN:\n    on:\n",
        "  RUN:\n    tasks: [db]\n    on:\n      NEXT: [{action: advance, state: RUN}]\n",
        GRAPH,
    )
    assert "next-cycle" not in {f.rule for f in lint(text).findings}


def test_every_rule_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOCS.read_text(), re.MULTILINE))
    missing = (set(ERROR_RULES) | set(WARNING_RULES)) - documented
    assert not missing, f"docs/spec.md documents no rule {sorted(missing)}"
