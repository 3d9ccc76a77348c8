"""The plan summary both modes compute from `terraform show -json` (documents shaped as
Terraform 1.x prints them; the real binary's are checked in the local executor's tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from statewright.executors.terraform_plan import (
    RESOURCES_MAX_BYTES,
    PlanNotUnderstood,
    drift_message,
    plan_summary,
)


def change(address: str, *actions: str) -> dict[str, Any]:
    return {
        "address": address,
        "mode": "data" if address.startswith("data.") else "managed",
        "change": {"actions": list(actions), "before": None, "after": {"secret": "s3cr3t"}},
    }


def output(*actions: str) -> dict[str, Any]:
    return {"actions": list(actions), "before": "a", "after": "s3cr3t", "after_sensitive": True}


def test_counts_follow_terraforms_own_summary() -> None:
    document = {
        "format_version": "0.2",
        "resource_changes": [
            change("aws_s3_bucket.logs", "create"),
            change("aws_instance.web", "update"),
            change("aws_instance.old", "delete"),
            change("aws_db_instance.main", "delete", "create"),
            change("aws_lb.front", "create", "delete"),
            change("aws_vpc.main", "no-op"),
            change("data.aws_ami.ubuntu", "read"),
        ],
        "output_changes": {"url": output("no-op")},
    }
    summary = plan_summary(document)
    assert summary == {
        "changes": True,
        "add": 3,
        "change": 1,
        "destroy": 3,
        "resources": [
            {"address": "aws_s3_bucket.logs", "action": "create"},
            {"address": "aws_instance.web", "action": "update"},
            {"address": "aws_instance.old", "action": "delete"},
            {"address": "aws_db_instance.main", "action": "replace"},
            {"address": "aws_lb.front", "action": "replace"},
        ],
    }
    # Values never make it into the summary (show -json prints sensitive ones too).
    assert "s3cr3t" not in json.dumps(summary)


def test_output_changes_count_as_changes() -> None:
    summary = plan_summary({"output_changes": {"url": output("update"), "id": output("no-op")}})
    assert summary == {"changes": True, "add": 0, "change": 0, "destroy": 0, "resources": []}
    assert "outputs change" in drift_message(summary)


def test_nothing_to_do() -> None:
    document = {"resource_changes": [change("aws_vpc.main", "no-op")], "output_changes": {}}
    assert plan_summary(document) == {
        "changes": False,
        "add": 0,
        "change": 0,
        "destroy": 0,
        "resources": [],
    }
    assert plan_summary({"format_version": "0.2"})["changes"] is False


def test_a_huge_plan_lists_what_fits_and_counts_the_rest() -> None:
    many = [change(f"aws_instance.web[{i}]", "create") for i in range(5000)]
    summary = plan_summary({"resource_changes": many})
    assert summary["add"] == 5000
    assert len(json.dumps(summary["resources"], separators=(",", ":"))) <= RESOURCES_MAX_BYTES
    assert len(summary["resources"]) + summary["resources_omitted"] == 5000


@pytest.mark.parametrize(
    "document",
    [[], "plan", {"resource_changes": {"a": 1}}, {"output_changes": []}],
)
def test_what_is_not_a_plan_is_refused(document: Any) -> None:
    with pytest.raises(PlanNotUnderstood):
        plan_summary(document)


def test_the_drift_message_gives_the_counts() -> None:
    summary = plan_summary({"resource_changes": [change("aws_instance.web", "update")]})
    assert drift_message(summary).startswith(
        "the plan has changes (0 to add, 1 to change, 0 to destroy)"
    )
