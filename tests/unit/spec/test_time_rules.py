"""Rules `lifecycle` and `schedule` (docs/spec.md#lifecycle, docs/spec.md#schedules):
each mistake is one finding on the line that holds it, and a clean spec normalizes to
the models the engine reads."""

from __future__ import annotations

import pytest
from statewright.spec.models import Spec

from tests.unit.spec.helpers import BASE, edit, lint, marked_lines

EVENTS = "events: [LAUNCH, DESTROY]\n"
TIMED = edit(
    EVENTS,
    "events: [LAUNCH, DESTROY, SLEEP, MARK_ACCESS]\n"
    "lifecycle:\n"
    "  ttl: 72h\n"
    "  max_ttl: 7d\n"
    "  expire_event: DESTROY\n"
    "  warn_before: [1h, 24h]\n"
    "  extend_on: [MARK_ACCESS]\n"
    "schedules:\n"
    "  - name: nightly-sleep\n"
    "    cron: '0  19 * * mon-fri'\n"
    "    timezone: Europe/Berlin\n"
    "    event: SLEEP\n"
    "    states: [RUN]\n"
    "  - name: hourly\n"
    "    cron: '0 * * * *'\n"
    "    event: MARK_ACCESS\n",
    edit(
        "      DESTROY:\n",
        "      SLEEP: [{action: no-op}]\n      MARK_ACCESS: [{action: no-op}]\n      DESTROY:\n",
    ),
)


def test_a_clean_spec_normalizes_its_lifecycle_and_schedules() -> None:
    result = lint(TIMED)
    assert result.findings == []
    spec = result.spec
    assert spec is not None and spec.lifecycle is not None and spec.schedules is not None
    assert (spec.lifecycle.ttl, spec.lifecycle.max_ttl) == (72 * 3600, 7 * 86400)
    assert spec.lifecycle.warn_before == [86400, 3600]
    document = spec.document()
    assert document["lifecycle"] == {
        "ttl": "3d",
        "max_ttl": "7d",
        "expire_event": "DESTROY",
        "warn_before": ["1d", "1h"],
        "extend_on": ["MARK_ACCESS"],
    }
    assert document["schedules"] == [
        {
            "name": "nightly-sleep",
            "cron": "0 19 * * MON-FRI",
            "timezone": "Europe/Berlin",
            "event": "SLEEP",
            "states": ["RUN"],
        },
        {"name": "hourly", "cron": "0 * * * *", "timezone": "UTC", "event": "MARK_ACCESS"},
    ]
    # The document is what the store keeps under the digest: it reads back the same.
    again = Spec.model_validate({**document, "base_dir": None})
    assert again.digest == spec.digest and again.lifecycle == spec.lifecycle
    assert spec.schedule("hourly") is not None and spec.schedule("nope") is None


def test_max_ttl_defaults_to_ttl_and_spellings_do_not_change_the_digest() -> None:
    short = lint(edit("  max_ttl: 7d\n", "", TIMED)).spec
    assert short is not None and short.lifecycle is not None
    assert short.lifecycle.max_ttl == short.lifecycle.ttl
    respelt = lint(edit("  ttl: 72h\n", "  ttl: 3d\n", TIMED)).spec
    assert respelt is not None and respelt.digest == lint(TIMED).spec.digest  # type: ignore[union-attr]


def test_a_spec_without_them_keeps_its_digest() -> None:
    spec = lint(BASE).spec
    assert spec is not None and spec.lifecycle is None and spec.schedules is None
    assert "lifecycle" not in spec.document() and "schedules" not in spec.document()


@pytest.mark.parametrize(
    ("old", "new", "rule", "says"),
    [
        ("  ttl: 72h\n", "  ttl: 72 #!\n", "lifecycle", "write `72s`"),
        ("  ttl: 72h\n", "  ttl: 3 days #!\n", "lifecycle", "e.g. 90s, 30m, 72h, 7d, 1d12h"),
        ("  max_ttl: 7d\n", "  max_ttl: 1d #!\n", "lifecycle", "shorter than `ttl` (3d)"),
        ("  expire_event: DESTROY\n", "  expire_event: DESTORY #!\n", "lifecycle", "`DESTROY`?"),
        ("  expire_event: DESTROY\n", "  expire_event: NEXT #!\n", "lifecycle", "system event"),
        ("  expire_event: DESTROY\n", "", "lifecycle", "needs `expire_event`"),
        ("  warn_before: [1h, 24h]\n", "  warn_before: [1h, 60m] #!\n", "lifecycle", "twice"),
        ("  warn_before: [1h, 24h]\n", "  warn_before: [1h, 7d] #!\n", "lifecycle", "never come"),
        ("  extend_on: [MARK_ACCESS]\n", "  extend_on: [MARK_ACESS] #!\n", "lifecycle", "MARK_"),
        ("  ttl: 72h\n", "  ttl: 72h\n  tll: 1h #!\n", "unknown-key", "did you mean `ttl`"),
        ("    cron: '0 * * * *'\n", "    cron: '0 * 1 * MON' #!\n", "schedule", "cannot express"),
        ("    cron: '0 * * * *'\n", "    cron: '0 * * *' #!\n", "schedule", "has 4 fields"),
        ("    cron: '0 * * * *'\n", "    cron: '0 0 L * *' #!\n", "schedule", "`L` (last)"),
        ("    cron: '0 * * * *'\n", "    cron: 5 #!\n", "schedule", "five fields in quotes"),
        ("    timezone: Europe/Berlin\n", "    timezone: Europe/Berln #!\n", "schedule", "Berlin`"),
        ("    event: SLEEP\n", "    event: SLEPP #!\n", "schedule", "did you mean `SLEEP`"),
        ("    states: [RUN]\n", "    states: [RUNN] #!\n", "schedule", "did you mean `RUN`"),
        ("    states: [RUN]\n", "    states: [] #!\n", "schedule", "not be empty"),
        ("  - name: hourly\n", "  - name: nightly-sleep #!\n", "schedule", "already defined"),
        ("  - name: hourly\n", "  - name: hour.ly #!\n", "schedule", "must match"),
        ("  - name: hourly\n", f"  - name: {'h' * 39} #!\n", "schedule", "at most 38"),
    ],
)
def test_each_mistake_is_one_finding_on_its_line(old: str, new: str, rule: str, says: str) -> None:
    text = edit(old, new, TIMED)
    result = lint(text)
    errors = [f for f in result.findings if f.severity == "error"]
    assert len(errors) == 1, result.findings
    assert (errors[0].rule, says in errors[0].message) == (rule, True), errors[0].message
    marked = marked_lines(text) or [text.splitlines().index("lifecycle:") + 1]
    assert [errors[0].line] == marked
    assert result.spec is None


def test_a_listed_state_that_does_not_handle_the_event_is_a_warning() -> None:
    text = edit("    states: [RUN]\n", "    states: [RUN, PROVISION] #!\n", TIMED)
    result = lint(text)
    assert [(f.severity, f.rule, f.line) for f in result.findings] == [
        ("warning", "schedule", marked_lines(text)[0])
    ]
    assert result.spec is not None


def test_a_spec_whose_file_name_cannot_be_a_scheduler_name_is_refused() -> None:
    from statewright.spec.lint import lint_text

    result = lint_text(TIMED, path="preview env.yml")
    assert [f.rule for f in result.errors] == ["schedule"]
    assert "rename the file" in result.errors[0].message


def test_strict_reports_both_as_extensions() -> None:
    findings = lint(TIMED, strict=True).findings
    extension_lines = {f.line for f in findings if f.rule == "extension"}
    lines = TIMED.splitlines()
    assert {lines.index("lifecycle:") + 1, lines.index("schedules:") + 1} <= extension_lines


def test_the_longest_schedule_name_that_fits_passes() -> None:
    # ENV (up to 20) + "." + "case" + "." + 38 = 64 characters.
    assert lint(edit("  - name: hourly\n", f"  - name: {'h' * 38}\n", TIMED)).errors == []
