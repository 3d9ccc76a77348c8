"""`statewright schema`: a valid draft-07 schema that accepts the example specs and
rejects broken ones the way an editor would show them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from statewright.spec.loader import load, to_python
from statewright.spec.schema import spec_schema

from tests.unit.spec.helpers import edit

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted([*ROOT.glob("specs/*.yml"), *ROOT.glob("examples/specs/*.yml")])


def as_data(text: str) -> Any:
    loaded = load(text)
    assert loaded.root is not None
    return to_python(loaded.root)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = spec_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    # What `statewright schema` prints must be plain JSON.
    return jsonschema.Draft7Validator(json.loads(json.dumps(schema)))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_specs_validate(validator: jsonschema.Draft7Validator, path: Path) -> None:
    errors = list(validator.iter_errors(as_data(path.read_text())))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("    terminal: true\n", '    terminal: "yes"\n', "terminal"),
        ("    terminal: true\n", "    termnial: true\n", "termnial"),
        ("version: 1.0\n", "version: 2\n", "version"),
        ("events: [LAUNCH, DESTROY]\n", "events: [LAUNCH, NEXT]\n", "events"),
        ("events: [LAUNCH, DESTROY]\n", "events: [launch]\n", "events"),
        ("    executor: lambda\n", "    executor: docker\n", "executor"),
        ("      name: db-setup\n", "      name: db setup!\n", "name"),
        ("      action: destroy\n", "      action: deploy\n", "action"),
        (
            "      action: destroy\n",
            "      action: destroy\n      fail_on_changes: true\n",
            "fail_on_changes",
        ),
        ("      action: destroy\n", "      action: destroy\n      plan: p\n", "plan"),
        ("    executor: terraform\n", "    executor: terraform\n    cancel: now\n", "cancel"),
        (
            "        - action: advance\n          state: RUN\n",
            "        - action: advance\n",
            "state",
        ),
        ("    executor: lambda\n", "    executor: lambda\n    retry: {attempts: 11}\n", "attempts"),
        ("  INIT:\n", "  START:\n", "INIT"),
    ],
)
def test_broken_specs_are_rejected(
    validator: jsonschema.Draft7Validator, old: str, new: str, where: str
) -> None:
    errors = list(validator.iter_errors(as_data(edit(old, new))))
    assert errors, f"the schema accepted {new!r}"


def test_x_keys_and_extensions_are_accepted(validator: jsonschema.Draft7Validator) -> None:
    text = "x-owner: me\n" + edit(
        "    executor: lambda\n",
        "    executor: lambda\n    retry: {attempts: 3, backoff_seconds: 5}\n"
        "    timeout_seconds: 60\n    description: creates the db\n    x-cost: low\n",
    )
    assert list(validator.iter_errors(as_data(text))) == []


def test_every_registered_executor_has_its_config_schema() -> None:
    definitions = spec_schema()["definitions"]
    assert {"lambda-config", "terraform-config"} <= set(definitions)
    assert definitions["task"]["properties"]["executor"]["enum"] == ["lambda", "terraform"]


def test_needs_and_references_are_known(validator: jsonschema.Draft7Validator) -> None:
    from tests.unit.spec.test_task_graph_rules import GRAPH

    assert list(validator.iter_errors(as_data(GRAPH))) == []
    for bad in ("${{ machine.id | lower }}", "${{ machine.id", "${{ tasks.a.b }}"):
        text = edit('"${{ tasks.db.outputs.endpoint.port }}"', json.dumps(bad), GRAPH)
        errors = list(validator.iter_errors(as_data(text)))
        assert errors, f"{bad} accepted"
    text = edit("    needs: [db]\n", "    needs: db\n", GRAPH)
    assert list(validator.iter_errors(as_data(text)))


def test_lifecycle_and_schedules_are_known(validator: jsonschema.Draft7Validator) -> None:
    from tests.unit.spec.test_time_rules import TIMED

    assert list(validator.iter_errors(as_data(TIMED))) == []
    for old, new in [
        ("  ttl: 72h\n", "  ttl: 72\n"),
        ("  ttl: 72h\n", "  ttl: 30m1h\n"),
        ("  expire_event: DESTROY\n", ""),
        ("    cron: '0 * * * *'\n", "    cron: '0 * * *'\n"),
        ("  - name: hourly\n", "  - name: hour.ly\n"),
        ("    states: [RUN]\n", "    states: []\n"),
    ]:
        errors = list(validator.iter_errors(as_data(edit(old, new, TIMED))))
        assert errors, f"the schema accepted {new!r}"
