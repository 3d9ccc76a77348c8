"""The summary of a saved Terraform plan, the output of an ``action: plan`` task
(docs/spec.md; on AWS docs/aws.md, "Plans and drift"): ``{"changes", "add",
"change", "destroy", "resources"}`` computed from ``terraform show -json <planfile>``.

Standard library only, and no import of the rest of Statewright: the CodeBuild project
ships this very file to its builds (infra/terraform_runner.py), whose helper imports it,
so a plan is summarised by the same function in every mode. Only addresses and actions
leave it: the show-json document holds every value of the plan, sensitive ones in
clear text, so it is never written anywhere."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# Room the summary's resource list may take: half of one task output's 32 KiB
# (statewright.limits.TASK_OUTPUT_MAX_BYTES, not imported: this file stands alone; a
# test ties the two). A plan of thousands of resources lists the first ones that fit
# and says how many it left out, so the task never fails on its own summary.
RESOURCES_MAX_BYTES = 16 * 1024

# A resource change whose actions are one of these changes nothing real.
_UNCHANGED = (("no-op",), ("read",))
# Terraform's action lists, as one word each, and what each counts as in its own
# "Plan: N to add, N to change, N to destroy".
_ACTIONS: dict[tuple[str, ...], tuple[str, int, int, int]] = {
    ("create",): ("create", 1, 0, 0),
    ("update",): ("update", 0, 1, 0),
    ("delete",): ("delete", 0, 0, 1),
    ("delete", "create"): ("replace", 1, 0, 1),
    ("create", "delete"): ("replace", 1, 0, 1),
}


class PlanNotUnderstood(ValueError):
    """``terraform show -json`` printed something that is not a plan document."""


def _actions(change: Any, where: str) -> tuple[str, ...]:
    actions = change.get("actions") if isinstance(change, Mapping) else None
    if not isinstance(actions, Sequence) or isinstance(actions, str) or not actions:
        raise PlanNotUnderstood(f"{where} has no list of actions")
    if not all(isinstance(action, str) for action in actions):
        raise PlanNotUnderstood(f"{where} has an action that is not a string")
    return tuple(actions)


def _resource_action(actions: tuple[str, ...], change: Mapping[str, Any]) -> str | None:
    """One word for a resource's change, or None when it changes nothing. Actions this
    function does not know (a newer Terraform's, ``forget`` say) count as a change:
    a drift check that is unsure says so rather than staying quiet."""
    if actions in _UNCHANGED:
        # An import (Terraform 1.5+ import blocks) changes the state, not the resource.
        return "import" if change.get("importing") else None
    known = _ACTIONS.get(actions)
    return known[0] if known else "+".join(actions)


def plan_summary(document: Any) -> dict[str, Any]:
    """``terraform show -json <planfile>`` -> ``{"changes": bool, "add": n, "change": n,
    "destroy": n, "resources": [{"address", "action"}]}``.

    ``add``/``change``/``destroy`` count as Terraform's own plan line does (a replace is
    one to add and one to destroy); ``resources`` lists every resource that changes, in
    the plan's order, with ``create``, ``update``, ``delete``, ``replace`` or
    ``import``; ``changes`` is true when a resource or an output changes. When the list
    would pass RESOURCES_MAX_BYTES it holds the first resources, and
    ``resources_omitted`` says how many more there are."""
    if not isinstance(document, Mapping):
        raise PlanNotUnderstood(
            f"terraform show -json printed a JSON {type(document).__name__}, not a plan object"
        )
    # Terraform leaves either out when it is empty.
    resource_changes = document.get("resource_changes", [])
    output_changes = document.get("output_changes", {})
    if not isinstance(resource_changes, list) or not isinstance(output_changes, Mapping):
        raise PlanNotUnderstood(
            "terraform show -json printed no plan (resource_changes must be a list and "
            "output_changes an object)"
        )
    add = change = destroy = 0
    resources: list[dict[str, str]] = []
    for entry in resource_changes:
        address = entry.get("address") if isinstance(entry, Mapping) else None
        if not isinstance(address, str):
            raise PlanNotUnderstood("a resource change of the plan has no address")
        details = entry.get("change")
        actions = _actions(details, f"resource {address}")
        action = _resource_action(actions, details)
        if action is None:
            continue
        _, added, changed, destroyed = _ACTIONS.get(actions, (action, 0, 0, 0))
        add, change, destroy = add + added, change + changed, destroy + destroyed
        resources.append({"address": address, "action": action})
    outputs_change = any(
        _actions(details, f"output {name}") not in _UNCHANGED
        for name, details in output_changes.items()
    )
    listed, omitted = _fit(resources)
    summary: dict[str, Any] = {
        "changes": bool(resources) or outputs_change,
        "add": add,
        "change": change,
        "destroy": destroy,
        "resources": listed,
    }
    if omitted:
        summary["resources_omitted"] = omitted
    return summary


def _fit(resources: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    used = 0
    for count, resource in enumerate(resources):
        used += len(json.dumps(resource, separators=(",", ":")).encode()) + 1
        if used > RESOURCES_MAX_BYTES:
            return resources[:count], len(resources) - count
    return resources, 0


def describe_changes(summary: Mapping[str, Any]) -> str:
    """``1 to add, 0 to change, 2 to destroy``, and what else changes, for messages."""
    text = (
        f"{summary['add']} to add, {summary['change']} to change, {summary['destroy']} to destroy"
    )
    counted = {"create", "update", "delete", "replace"}
    others = sorted({r["action"] for r in summary["resources"]} - counted)
    if others:
        text += f"; also {', '.join(others)}"
    if summary["changes"] and not summary["resources"]:
        text += "; outputs change"
    return text


def drift_message(summary: Mapping[str, Any]) -> str:
    """The task's error for a plan with changes under ``fail_on_changes: true``."""
    return (
        f"the plan has changes ({describe_changes(summary)}), and the task says "
        "fail_on_changes: the environment drifted from its configuration"
    )
