"""A plan task's output, computed from ``terraform show -json PLANFILE`` the same way in
every mode (the local executor and the CodeBuild buildspec's report step both call
:func:`plan_summary`), and the message of a plan that fails ``fail_on_changes``.

The summary holds addresses and actions only, never a value: ``show -json`` prints
every planned value, sensitive ones included, so that document is read here and
nowhere else (neither stored nor logged). Standard library only, so a build can import
it without the control plane's dependencies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from statewright.limits import TASK_OUTPUT_MAX_BYTES

# Room the summary leaves for the rest of a machine's outputs: a plan of thousands of
# resources lists the first ones that fit and says how many it left out.
RESOURCES_MAX_BYTES = TASK_OUTPUT_MAX_BYTES // 2


class PlanNotUnderstood(ValueError):
    """``terraform show -json`` printed something that is not a plan document."""


def resource_action(actions: list[str]) -> str | None:
    """Terraform's action list for one resource as one word, or None when it changes
    nothing (``no-op``, or ``read``: a data source read is not a change)."""
    if set(actions) == {"create", "delete"}:
        return "replace"  # ["delete", "create"] or ["create", "delete"]
    if len(actions) == 1 and actions[0] in ("create", "update", "delete"):
        return actions[0]
    return None


def plan_summary(document: Any) -> dict[str, Any]:
    """``{"changes", "add", "change", "destroy", "resources": [{"address", "action"}]}``
    from a ``show -json`` plan document. ``add``/``change``/``destroy`` count as
    Terraform's own "Plan: X to add, Y to change, Z to destroy" (a replacement adds one
    and destroys one); ``changes`` is true when any resource or any output would
    change. When the resource list would pass RESOURCES_MAX_BYTES, it holds the first
    ones and ``resources_omitted`` says how many more there are."""
    if not isinstance(document, Mapping):
        raise PlanNotUnderstood(
            f"terraform show -json printed a JSON {type(document).__name__}, not a plan"
        )
    counts = {"create": 0, "update": 0, "delete": 0}
    resources: list[dict[str, str]] = []
    for change in _entries(document, "resource_changes"):
        action = resource_action(list(change.get("change", {}).get("actions", [])))
        if action is None:
            continue
        for counted in ("create", "delete") if action == "replace" else (action,):
            counts[counted] += 1
        resources.append({"address": str(change.get("address", "")), "action": action})
    outputs = document.get("output_changes")
    outputs = {} if outputs is None else outputs
    if not isinstance(outputs, Mapping):
        raise PlanNotUnderstood("terraform show -json: output_changes is not an object")
    output_changed = any(
        isinstance(entry, Mapping) and list(entry.get("actions", [])) != ["no-op"]
        for entry in outputs.values()
    )
    listed, omitted = _fit(resources)
    summary: dict[str, Any] = {
        "changes": bool(resources) or output_changed,
        "add": counts["create"],
        "change": counts["update"],
        "destroy": counts["delete"],
        "resources": listed,
    }
    if omitted:
        summary["resources_omitted"] = omitted
    return summary


def drift_message(summary: Mapping[str, Any]) -> str:
    """The error of a plan with changes under ``fail_on_changes: true``."""
    return (
        f"the plan has changes ({summary['add']} to add, {summary['change']} to change, "
        f"{summary['destroy']} to destroy"
        + ("" if summary["resources"] else "; outputs change")
        + "), and the task says fail_on_changes: the environment drifted from its "
        "configuration"
    )


def _entries(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    entries = document.get(key)
    entries = [] if entries is None else entries
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise PlanNotUnderstood(f"terraform show -json: {key} is not a list of objects")
    return entries


def _fit(resources: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    used = 0
    for count, resource in enumerate(resources):
        used += len(json.dumps(resource, separators=(",", ":")).encode()) + 1
        if used > RESOURCES_MAX_BYTES:
            return resources[:count], len(resources) - count
    return resources, 0
