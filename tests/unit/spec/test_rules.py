"""Every rule id and warning of docs/spec.md#rules: a spec that triggers it (at the marked
line) and a close one that does not."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.unit.spec.helpers import BASE, edit, lint, marked_lines, rule_lines


@dataclass(frozen=True)
class Case:
    rule: str
    triggers: str
    clean: str = BASE
    strict: bool = False


# BASE with a plan task on db-teardown's source (used in PROVISION beside db-setup).
PLANNED = edit("    tasks: [db-setup]\n", "    tasks: [db-setup, db-plan]\n") + (
    "  db-plan:\n"
    "    executor: terraform\n"
    "    config:\n"
    "      action: plan\n"
    "      source: {type: s3, bucket: b, key: machines.tf}\n"
)

ERRORS: dict[str, Case] = {
    "yaml-syntax/unclosed-flow": Case(
        "yaml-syntax",
        edit("events: [LAUNCH, DESTROY]\n", "events: [LAUNCH, DESTROY\nstates2: 1 #!\n"),
    ),
    "yaml-syntax/tab-indent": Case(
        "yaml-syntax", edit("    terminal: true\n", "\tterminal: true #!\n")
    ),
    "yaml-syntax/top-level-list": Case("yaml-syntax", "- version: 1.0 #!\n- events: []\n"),
    "yaml-syntax/empty": Case("yaml-syntax", "# nothing here #!\n"),
    "yaml-syntax/two-documents": Case("yaml-syntax", BASE + "--- #!\nversion: 1.0\n"),
    "yaml-syntax/undefined-alias": Case(
        "yaml-syntax",
        edit("      DESTROY:\n", "      <<: *nowhere #!\n      DESTROY:\n"),
        # The same merge with its anchor defined is fine.
        "x-listeners: &listeners\n  DESTROY: [{action: advance, state: TEARDOWN}]\n"
        + edit("      DESTROY:\n", "      <<: *listeners\n      DESTROY:\n"),
    ),
    "duplicate-key/state": Case(
        "duplicate-key", edit("  TEARDOWN:\n", "  RUN: #!\n    terminal: true\n  TEARDOWN:\n")
    ),
    "duplicate-key/event-handler": Case(
        "duplicate-key",
        edit(
            "      DESTROY:\n",
            "      DESTROY: [{action: no-op}]\n      DESTROY: #!\n",
        ),
    ),
    "duplicate-key/task": Case(
        "duplicate-key",
        edit("  db-teardown:\n", "  db-setup: #!\n    executor: lambda\n  db-teardown:\n"),
    ),
    "duplicate-key/flow-mapping": Case(
        "duplicate-key",
        edit(
            "      source: {type: s3, bucket: b, key: machines.tf}\n",
            "      source: {type: s3, bucket: b, key: a.tf, key: machines.tf} #!\n",
        ),
    ),
    "unsupported-version/2": Case(
        "unsupported-version",
        edit("version: 1.0\n", "version: 2 #!\n"),
        edit("version: 1.0\n", "version: 1\n"),
    ),
    "unsupported-version/string": Case(
        "unsupported-version",
        edit("version: 1.0\n", "version: '1.1' #!\n"),
        edit("version: 1.0\n", "version: '1.0'\n"),
    ),
    "unsupported-version/semver": Case(
        "unsupported-version",
        edit("version: 1.0\n", "version: 1.0.0 #!\n"),
        edit("version: 1.0\n", 'version: "1"\n'),
    ),
    "unknown-key/state": Case(
        "unknown-key",
        edit("    terminal: true\n", "    termnial: true #!\n    terminal: true\n"),
        edit("    terminal: true\n", "    x-termnial: true\n    terminal: true\n"),
    ),
    "unknown-key/top": Case(
        "unknown-key",
        edit("tasks:\n", "task-defaults: {} #!\ntasks:\n"),
        edit("tasks:\n", "x-task-defaults: {}\ntasks:\n"),
    ),
    "unknown-key/action": Case(
        "unknown-key",
        edit("          state: RUN\n", "          state: RUN\n          target: RUN #!\n"),
    ),
    "unknown-key/task": Case(
        "unknown-key",
        edit("    executor: lambda\n", "    executor: lambda\n    retries: 3 #!\n"),
        edit("    executor: lambda\n", "    executor: lambda\n    retry: {attempts: 3}\n"),
    ),
    "unknown-key/retry": Case(
        "unknown-key",
        edit("    executor: lambda\n", "    executor: lambda\n    retry: {attempt: 3} #!\n"),
    ),
    "type/terminal-quoted-yes": Case(
        "type", edit("    terminal: true\n", '    terminal: "yes" #!\n')
    ),
    "type/terminal-yaml11-yes": Case(
        "type",
        edit("    terminal: true\n", "    terminal: yes #!\n"),
        edit("    terminal: true\n", "    terminal: True\n"),
    ),
    "type/tasks-not-a-list": Case(
        "type", edit("    tasks: [db-setup]\n", "    tasks: db-setup #!\n")
    ),
    "type/events-missing": Case(
        "type",
        edit("events: [LAUNCH, DESTROY]\n", "", edit("version: 1.0\n", "version: 1.0 #!\n")),
    ),
    "type/events-not-a-list": Case(
        "type", edit("events: [LAUNCH, DESTROY]\n", "events: LAUNCH #!\n")
    ),
    "type/states-missing": Case("type", "version: 1.0 #!\nevents: [LAUNCH]\n"),
    "type/handler-not-a-list": Case(
        "type",
        edit(
            "      DESTROY:\n        - action: advance\n          state: TEARDOWN\n",
            "      DESTROY: {action: advance, state: TEARDOWN} #!\n",
        ),
    ),
    "type/action-missing": Case(
        "type",
        edit("        - action: advance\n          state: RUN\n", "        - state: RUN #!\n"),
    ),
    "type/executor-missing": Case(
        "type",
        edit("  db-setup:\n    executor: lambda\n", "  db-setup: #!\n"),
    ),
    "type/retry-attempts-out-of-range": Case(
        "type",
        edit("    executor: lambda\n", "    executor: lambda\n    retry: {attempts: 11} #!\n"),
        edit("    executor: lambda\n", "    executor: lambda\n    retry: {attempts: 10}\n"),
    ),
    "type/timeout-zero": Case(
        "type",
        edit("    executor: lambda\n", "    executor: lambda\n    timeout_seconds: 0 #!\n"),
        edit("    executor: lambda\n", "    executor: lambda\n    timeout_seconds: 60\n"),
    ),
    "type/description-not-text": Case(
        "type",
        edit("    terminal: true\n", "    terminal: true\n    description: [a] #!\n"),
        edit("    terminal: true\n", "    terminal: true\n    description: the end\n"),
    ),
    "event-name/event": Case(
        "event-name",
        edit(
            "events: [LAUNCH, DESTROY]\n",
            "events: [LAUNCH, DESTROY, mark-access] #!\n",
        ),
        edit("events: [LAUNCH, DESTROY]\n", "events: [LAUNCH, DESTROY, MARK_ACCESS]\n"),
    ),
    "state-name": Case(
        "state-name",
        edit("  RUN:\n", "  Running: #!\n", edit("state: RUN\n", "state: Running\n")),
        edit("  RUN:\n", "  RUN-2:\n", edit("state: RUN\n", "state: RUN-2\n")),
    ),
    "event-name/leading-dash": Case(
        "event-name",
        edit("events: [LAUNCH, DESTROY]\n", "events:\n  - LAUNCH\n  - DESTROY\n  - -X #!\n"),
    ),
    "duplicate-event": Case(
        "duplicate-event",
        edit("events: [LAUNCH, DESTROY]\n", "events:\n  - LAUNCH\n  - DESTROY\n  - LAUNCH #!\n"),
    ),
    "reserved-event/next": Case(
        "reserved-event",
        edit("events: [LAUNCH, DESTROY]\n", "events:\n  - LAUNCH\n  - DESTROY\n  - NEXT #!\n"),
    ),
    "reserved-event/failed": Case(
        "reserved-event",
        edit("events: [LAUNCH, DESTROY]\n", "events: [LAUNCH, DESTROY, FAILED] #!\n"),
    ),
    "missing-init": Case(
        "missing-init",
        edit(
            "states:\n  INIT:\n",
            "states: #!\n  START:\n",
        ),
    ),
    "no-terminal": Case(
        "no-terminal",
        edit("states:\n", "states: #!\n", edit("    terminal: true\n", "    terminal: false\n")),
    ),
    "unknown-event": Case(
        "unknown-event",
        edit("      DESTROY:\n", "      DESTORY: #!\n"),
        edit("      DESTROY:\n", "      FAILED: [{action: no-op}]\n      DESTROY:\n"),
    ),
    "unknown-action": Case(
        "unknown-action",
        edit(
            "        - action: advance\n          state: RUN\n",
            "        - action: goto #!\n          state: RUN\n",
        ),
        edit("      DESTROY:\n", "      LAUNCH: [{action: no-op}]\n      DESTROY:\n"),
    ),
    "advance-target/missing-state": Case(
        "advance-target",
        edit("          state: TEARDOWN\n", "          state: TEARDOWNN #!\n"),
    ),
    "advance-target/no-state": Case(
        "advance-target",
        edit(
            "      DESTROY:\n        - action: advance\n          state: TEARDOWN\n",
            "      DESTROY:\n        - action: advance #!\n",
            BASE + "\n",
        ),
    ),
    "advance-target/no-op-with-state": Case(
        "advance-target",
        edit(
            "      DESTROY:\n",
            "      LAUNCH:\n        - action: no-op\n          state: RUN #!\n      DESTROY:\n",
        ),
        edit("      DESTROY:\n", "      LAUNCH:\n        - action: no-op\n      DESTROY:\n"),
    ),
    "multiple-advance": Case(
        "multiple-advance",
        edit(
            "          state: RUN\n",
            "          state: RUN\n        - action: advance #!\n          state: TEARDOWN\n",
        ),
        edit(
            "          state: RUN\n",
            "          state: RUN\n        - action: no-op\n",
        ),
    ),
    "unknown-task/undefined": Case(
        "unknown-task", edit("    tasks: [db-setup]\n", "    tasks: [db-setup, db-migrate] #!\n")
    ),
    "duplicate-task": Case(
        "duplicate-task",
        edit("    tasks: [db-setup]\n", "    tasks:\n      - db-setup\n      - db-setup #!\n"),
    ),
    "missing-next": Case(
        "missing-next",
        edit(
            "  RUN:\n    on:\n",
            "  RUN: #!\n    tasks: [db-setup]\n    on:\n",
        ),
        edit(
            "  RUN:\n    on:\n",
            "  RUN:\n    tasks: [db-setup]\n    on:\n      NEXT: [{action: no-op}]\n",
        ),
    ),
    "executor": Case(
        "executor",
        edit("    executor: lambda\n", "    executor: docker #!\n"),
    ),
    "lambda-config/bad-name": Case(
        "lambda-config",
        edit("      name: db-setup\n", "      name: db setup! #!\n"),
        edit(
            "      name: db-setup\n",
            "      name: arn:aws:lambda:eu-west-1:123456789012:function:db-setup:live\n",
        ),
    ),
    "lambda-config/missing-name": Case(
        "lambda-config",
        edit("    config:\n      name: db-setup\n", "    config: #!\n      args: {size: small}\n"),
        edit(
            "      name: db-setup\n",
            "      name: 123456789012:function:db-setup\n      args: {size: small}\n",
        ),
    ),
    "lambda-config/args-not-object": Case(
        "lambda-config",
        edit("      name: db-setup\n", "      name: db-setup\n      args: [small] #!\n"),
    ),
    "terraform-config/action": Case(
        "terraform-config",
        edit("      action: destroy\n", "      action: deploy #!\n"),
        edit("      action: destroy\n", "      action: plan\n"),
    ),
    "terraform-config/fail-on-changes-only-for-plan": Case(
        "terraform-config",
        edit("      action: destroy\n", "      action: destroy\n      fail_on_changes: true #!\n"),
        edit("      action: destroy\n", "      action: plan\n      fail_on_changes: true\n"),
    ),
    "terraform-config/plan-only-for-apply": Case(
        "terraform-config",
        edit("      action: destroy\n", "      action: destroy\n      plan: db-plan #!\n", PLANNED),
        edit("      action: destroy\n", "      action: apply\n      plan: db-plan\n", PLANNED),
    ),
    "terraform-config/plan-names-a-task": Case(
        "terraform-config",
        edit("      action: destroy\n", "      action: apply\n      plan: db-pln #!\n", PLANNED),
        edit("      action: destroy\n", "      action: apply\n      plan: db-plan\n", PLANNED),
    ),
    "terraform-config/plan-names-a-plan-task": Case(
        "terraform-config",
        edit("      action: destroy\n", "      action: apply\n      plan: db-setup #!\n", PLANNED),
        edit("      action: destroy\n", "      action: apply\n      plan: db-plan\n", PLANNED),
    ),
    "terraform-config/plan-of-the-same-source": Case(
        "terraform-config",
        edit(
            "      action: destroy\n      source: {type: s3, bucket: b, key: machines.tf}\n",
            "      action: apply\n"
            "      plan: db-plan #!\n"
            "      source: {type: s3, bucket: b, key: other.tf}\n",
            PLANNED,
        ),
        edit("      action: destroy\n", "      action: apply\n      plan: db-plan\n", PLANNED),
    ),
    "terraform-config/no-variables-with-a-plan": Case(
        "terraform-config",
        edit(
            "      action: destroy\n",
            "      action: apply\n      plan: db-plan\n      variables: {size: 1} #!\n",
            PLANNED,
        ),
        edit("      action: destroy\n", "      action: apply\n      plan: db-plan\n", PLANNED),
    ),
    "type/cancel": Case(
        "type",
        edit("    executor: terraform\n", "    executor: terraform\n    cancel: forse #!\n"),
        edit("    executor: terraform\n", "    executor: terraform\n    cancel: force\n"),
    ),
    "terraform-config/s3-needs-key": Case(
        "terraform-config",
        edit(
            "      source: {type: s3, bucket: b, key: machines.tf}\n",
            "      source: #!\n        type: s3\n        bucket: b\n",
        ),
    ),
    "terraform-config/local-needs-location": Case(
        "terraform-config",
        edit(
            "      source: {type: s3, bucket: b, key: machines.tf}\n",
            "      source: {type: local} #!\n",
        ),
        edit(
            "      source: {type: s3, bucket: b, key: machines.tf}\n",
            "      source: {type: local, location: ./modules/env}\n",
        ),
    ),
    "terraform-config/source-type": Case(
        "terraform-config",
        edit(
            "      source: {type: s3, bucket: b, key: machines.tf}\n",
            "      source:\n        type: git #!\n        location: x\n",
        ),
    ),
    "terraform-config/variables": Case(
        "terraform-config",
        edit(
            "      action: destroy\n",
            "      action: destroy\n      variables: [desired_capacity] #!\n",
        ),
        edit(
            "      action: destroy\n",
            "      action: destroy\n      variables: {desired_capacity: 0, tags: {team: a}}\n",
        ),
    ),
    "terraform-config/reserved-variable": Case(
        "terraform-config",
        edit(
            "      action: destroy\n",
            "      action: destroy\n      variables: {stack_id: other, size: 1} #!\n",
        ),
        edit(
            "      action: destroy\n",
            "      action: destroy\n      variables: {stack: other, Statewright_x: 1}\n",
        ),
    ),
    "terraform-config/unknown-key": Case(
        "terraform-config",
        edit("      action: destroy\n", "      action: destroy\n      workspace: x #!\n"),
        edit("      action: destroy\n", "      action: destroy\n      x-workspace: x\n"),
    ),
}

WARNINGS: dict[str, Case] = {
    "unreachable-state": Case(
        "unreachable-state",
        edit(
            "  TEARDOWN:\n",
            "  LIMBO: #!\n    on:\n      DESTROY: [{action: advance, state: TEARDOWN}]\n"
            "  TEARDOWN:\n",
        ),
    ),
    "unhandled-event": Case(
        "unhandled-event",
        edit("events: [LAUNCH, DESTROY]\n", "events:\n  - LAUNCH\n  - DESTROY\n  - PAUSE #!\n"),
    ),
    "unused-task": Case(
        "unused-task",
        BASE + "  db-backup: #!\n    executor: lambda\n    config: {name: db-backup}\n",
    ),
    "no-path-to-terminal": Case(
        "no-path-to-terminal",
        edit(
            "      DESTROY:\n        - action: advance\n          state: TEARDOWN\n",
            "      DESTROY:\n        - action: advance\n          state: TEARDOWN\n"
            "      LAUNCH:\n        - action: advance\n          state: STUCK\n"
            "  STUCK: #!\n    on:\n      LAUNCH: [{action: no-op}]\n",
        ),
    ),
    "terminal-next": Case(
        "terminal-next",
        edit(
            "    tasks: [db-teardown]\n",
            "    tasks: [db-teardown]\n    on:\n      NEXT: #!\n        - action: advance\n"
            "          state: INIT\n",
        ),
        edit(
            "    tasks: [db-teardown]\n",
            "    tasks: [db-teardown]\n    on:\n      FAILED:\n        - action: advance\n"
            "          state: RUN\n",
        ),
    ),
    "empty-handler/list": Case(
        "empty-handler",
        edit("      DESTROY:\n", "      LAUNCH: [] #!\n      DESTROY:\n"),
        edit("      DESTROY:\n", "      LAUNCH: [{action: no-op}]\n      DESTROY:\n"),
    ),
    "empty-handler/null": Case(
        "empty-handler",
        edit("      DESTROY:\n", "      LAUNCH: #!\n      DESTROY:\n"),
    ),
    "extension/retry": Case(
        "extension",
        edit("    executor: lambda\n", "    executor: lambda\n    retry: {attempts: 3} #!\n"),
        edit("    executor: lambda\n", "    executor: lambda\n    retry: {attempts: 3}\n"),
        strict=True,
    ),
    "extension/x-key": Case(
        "extension",
        "x-owner: platform #!\n" + BASE,
        BASE,
        strict=True,
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_error_rule_fires_at_the_marked_line(case: Case) -> None:
    expected = marked_lines(case.triggers)
    assert expected, "a case marks its line with #!"
    result = lint(case.triggers, strict=case.strict)
    found = rule_lines(result, case.rule)
    assert found, f"{case.rule} not reported: {[f.format() for f in result.findings]}"
    assert set(found) & set(expected), f"{case.rule} at {found}, expected line {expected}"
    assert result.spec is None
    assert all(f.severity == "error" for f in result.findings if f.rule == case.rule)


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_error_rule_stays_quiet_on_the_clean_variant(case: Case) -> None:
    result = lint(case.clean, strict=case.strict)
    assert result.errors == [], [f.format() for f in result.errors]
    assert result.spec is not None


@pytest.mark.parametrize("case", WARNINGS.values(), ids=WARNINGS.keys())
def test_warning_fires_at_the_marked_line_and_keeps_the_spec(case: Case) -> None:
    result = lint(case.triggers, strict=case.strict)
    found = rule_lines(result, case.rule)
    assert set(found) & set(marked_lines(case.triggers)), [f.format() for f in result.findings]
    assert all(f.severity == "warning" for f in result.findings if f.rule == case.rule)
    assert result.errors == [], [f.format() for f in result.errors]
    assert result.spec is not None


@pytest.mark.parametrize("case", WARNINGS.values(), ids=WARNINGS.keys())
def test_warning_stays_quiet_on_the_clean_variant(case: Case) -> None:
    result = lint(case.clean, strict=False if case.rule == "extension" else case.strict)
    assert case.rule not in {f.rule for f in result.findings}
    assert result.findings == [] or result.errors == []


def test_the_base_spec_is_clean_even_in_strict_mode() -> None:
    result = lint(BASE, strict=True)
    assert result.findings == []
    assert result.spec is not None
    assert result.spec.version == "1.0"
