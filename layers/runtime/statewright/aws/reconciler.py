"""The reconciler (scheduled): repairs what lost events left behind.

``Service.recover`` re-publishes NEXT/FAILED that were never applied, starts tasks stuck
in ``pending`` and fails tasks past their timeout. Then CodeBuild is asked
(BatchGetBuilds) about every running terraform task: a build that ended without its
events reaching the dispatcher is completed exactly as its ``Build State Change`` would
have completed it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from statewright.aws.dispatch import codebuild_state_change
from statewright.aws.wiring import Runtime

BATCH_GET_BUILDS = 100  # BatchGetBuilds' limit
# A pending task younger than this may have its start in flight in the dispatcher.
PENDING_GRACE_SECONDS = 120.0


@dataclass
class ReconcileReport:
    recovery: dict[str, Any] = field(default_factory=dict)
    builds_checked: int = 0
    builds_completed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def running_builds(rt: Runtime) -> list[str]:
    """Build ids of the running terraform attempts of every machine."""
    builds: list[str] = []
    token: str | None = None
    while True:
        machines, token = rt.store.list_machines(limit=100, next_token=token)
        for machine in machines:
            for record in machine.current_tasks().values():
                if record.executor == "terraform" and record.status == "running" and record.run_id:
                    builds.append(record.run_id)
        if token is None:
            return builds


def _as_event_detail(build: Any) -> dict[str, Any]:
    """A BatchGetBuilds build in the shape of a ``Build State Change`` detail."""
    return {
        "build-status": build.get("buildStatus", ""),
        "build-id": build.get("arn") or build.get("id", ""),
        "project-name": build.get("projectName", ""),
        "additional-information": {
            "environment": {
                "environment-variables": build.get("environment", {}).get(
                    "environmentVariables", []
                )
            }
        },
    }


def reconcile(rt: Runtime) -> ReconcileReport:
    report = ReconcileReport()
    report.recovery = asdict(rt.service.recover(pending_grace_seconds=PENDING_GRACE_SECONDS))
    ids = running_builds(rt)
    for i in range(0, len(ids), BATCH_GET_BUILDS):
        response = rt.codebuild.batch_get_builds(ids=ids[i : i + BATCH_GET_BUILDS])
        for build in response.get("builds", []):
            report.builds_checked += 1
            if build.get("buildStatus") == "IN_PROGRESS":
                continue
            outcome = codebuild_state_change(rt, _as_event_detail(build))
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            if outcome == "applied":
                report.builds_completed += 1
    return report
