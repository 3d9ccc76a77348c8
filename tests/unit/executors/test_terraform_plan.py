"""statewright.executors.terraform_plan: a plan's summary from ``terraform show -json``
(the plan document's resource_changes and output_changes)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from statewright.executors import terraform_plan
from statewright.executors.terraform_plan import (
    RESOURCES_MAX_BYTES,
    PlanNotUnderstood,
    describe_changes,
    drift_message,
    plan_summary,
)
from statewright.limits import TASK_OUTPUT_MAX_BYTES


def change(address: str, *actions: str, **extra: Any) -> dict[str, Any]:
    return {
        "address": address,
        "mode": "data" if address.startswith("data.") else "managed",
        "change": {"actions": list(actions), "before": None, "after": {"k": "s3cr3t"}, **extra},
    }


def test_counts_like_terraforms_plan_line_and_lists_what_changes() -> None:
    document = {
        "format_version": "1.2",
        "resource_changes": [
            change("aws_s3_bucket.logs", "create"),
            change("aws_s3_bucket.site", "update"),
            change("aws_instance.old", "delete"),
            change("aws_instance.web", "delete", "create"),
            change("aws_instance.api", "create", "delete"),
            change("aws_iam_role.kept", "no-op"),
            change("data.aws_caller_identity.me", "read"),
            change("aws_s3_bucket.found", "no-op", importing={"id": "found"}),
        ],
        "output_changes": {"url": {"actions": ["no-op"]}},
    }
    assert plan_summary(document) == {
        "changes": True,
        "add": 3,
        "change": 1,
        "destroy": 3,
        "resources": [
            {"address": "aws_s3_bucket.logs", "action": "create"},
            {"address": "aws_s3_bucket.site", "action": "update"},
            {"address": "aws_instance.old", "action": "delete"},
            {"address": "aws_instance.web", "action": "replace"},
            {"address": "aws_instance.api", "action": "replace"},
            {"address": "aws_s3_bucket.found", "action": "import"},
        ],
    }
    # Values never make it into the summary (show -json prints sensitive ones too).
    assert "s3cr3t" not in json.dumps(plan_summary(document))


@pytest.mark.parametrize(
    ("document", "changes"),
    [
        ({"format_version": "1.2"}, False),  # Terraform leaves empty lists out
        ({"resource_changes": [change("a.b", "no-op")], "output_changes": {}}, False),
        ({"resource_changes": [change("data.x.y", "read")]}, False),
        ({"output_changes": {"url": {"actions": ["update"]}}}, True),
        ({"output_changes": {"gone": {"actions": ["delete"]}}}, True),
    ],
)
def test_changes_counts_outputs_too(document: dict[str, Any], changes: bool) -> None:
    summary = plan_summary(document)
    assert summary["changes"] is changes
    assert (summary["add"], summary["change"], summary["destroy"], summary["resources"]) == (
        0,
        0,
        0,
        [],
    )


def test_an_action_it_does_not_know_is_a_change_not_silence() -> None:
    summary = plan_summary({"resource_changes": [change("aws_instance.x", "forget")]})
    assert summary["changes"] is True
    assert summary["resources"] == [{"address": "aws_instance.x", "action": "forget"}]
    assert (summary["add"], summary["change"], summary["destroy"]) == (0, 0, 0)
    assert describe_changes(summary) == "0 to add, 0 to change, 0 to destroy; also forget"


def test_a_plan_of_thousands_of_resources_lists_what_fits_and_counts_the_rest() -> None:
    many = [change(f"aws_s3_object.file[{i}]", "create") for i in range(2000)]
    summary = plan_summary({"resource_changes": many})
    assert summary["add"] == 2000 and summary["changes"] is True
    listed = summary["resources"]
    assert 0 < len(listed) < 2000 and summary["resources_omitted"] == 2000 - len(listed)
    assert listed == [
        {"address": f"aws_s3_object.file[{i}]", "action": "create"} for i in range(len(listed))
    ]
    assert len(json.dumps(listed, separators=(",", ":")).encode()) <= RESOURCES_MAX_BYTES
    # Half of one task output: the summary always fits, with room to spare.
    assert RESOURCES_MAX_BYTES == TASK_OUTPUT_MAX_BYTES // 2
    assert "resources_omitted" not in plan_summary({"resource_changes": many[:10]})


def test_describe_changes() -> None:
    summary = plan_summary(
        {
            "resource_changes": [change("a.b", "create"), change("a.c", "delete", "create")],
            "output_changes": {"o": {"actions": ["create"]}},
        }
    )
    assert describe_changes(summary) == "2 to add, 0 to change, 1 to destroy"
    outputs_only = plan_summary({"output_changes": {"o": {"actions": ["create"]}}})
    assert describe_changes(outputs_only) == "0 to add, 0 to change, 0 to destroy; outputs change"
    assert drift_message(summary) == (
        "the plan has changes (2 to add, 0 to change, 1 to destroy), and the task says "
        "fail_on_changes: the environment drifted from its configuration"
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "printed a JSON list, not a plan object"),
        ({"resource_changes": {}}, "resource_changes must be a list"),
        ({"output_changes": []}, "output_changes an object"),
        ({"resource_changes": [{"change": {"actions": ["create"]}}]}, "has no address"),
        ({"resource_changes": [{"address": "a.b", "change": {}}]}, "resource a.b has no list"),
        ({"resource_changes": [change("a.b")]}, "resource a.b has no list of actions"),
        ({"resource_changes": [{"address": "a.b", "change": {"actions": "create"}}]}, "no list"),
        ({"resource_changes": [change("a.b", 1)]}, "not a string"),  # type: ignore[arg-type]
        ({"output_changes": {"o": {}}}, "output o has no list of actions"),
    ],
)
def test_what_is_not_a_plan_is_refused_with_its_reason(document: Any, problem: str) -> None:
    with pytest.raises(PlanNotUnderstood, match=problem):
        plan_summary(document)


def test_the_module_stands_alone_for_the_builds_that_import_it() -> None:
    # CodeBuild builds load this one file by path: only the standard library.
    assert terraform_plan.__file__ is not None
    tree = ast.parse(Path(terraform_plan.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "collections", "json", "typing"}
