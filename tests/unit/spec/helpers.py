"""Shared spec texts and helpers for the spec toolkit's tests.

A case marks the line where a finding is expected with a trailing ``#!`` comment."""

from __future__ import annotations

import textwrap

from statewright.spec.lint import LintResult, lint_text

BASE = textwrap.dedent(
    """\
    version: 1.0
    events: [LAUNCH, DESTROY]
    states:
      INIT:
        on:
          LAUNCH:
            - action: advance
              state: PROVISION
      PROVISION:
        tasks: [db-setup]
        on:
          NEXT:
            - action: advance
              state: RUN
      RUN:
        on:
          DESTROY:
            - action: advance
              state: TEARDOWN
      TEARDOWN:
        terminal: true
        tasks: [db-teardown]
    tasks:
      db-setup:
        executor: lambda
        config:
          name: db-setup
      db-teardown:
        executor: terraform
        config:
          action: destroy
          source: {type: s3, bucket: b, key: machines.tf}
    """
)


def edit(old: str, new: str, text: str = BASE) -> str:
    """``text`` with the one occurrence of ``old`` replaced by ``new``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def marked_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if line.rstrip().endswith("#!")]


def lint(text: str, *, strict: bool = False) -> LintResult:
    return lint_text(text, path="case.yml", strict=strict)


def rule_lines(result: LintResult, rule: str) -> list[int]:
    return [f.line for f in result.findings if f.rule == rule]
