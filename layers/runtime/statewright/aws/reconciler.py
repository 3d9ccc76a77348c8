"""The reconciler (scheduled): repairs what lost events left behind.

``Service.recover`` re-publishes NEXT/FAILED that were never applied, starts tasks stuck
in ``pending`` and fails tasks past their timeout. Then CodeBuild is asked
(BatchGetBuilds) about every running terraform task: a build that ended without its
events reaching the dispatcher is completed exactly as its ``Build State Change`` would
have completed it (a failed one fails its attempt; a SUCCEEDED one awaits its report,
which its build made sure EventBridge accepted). Both come from one read of the
machines with work (the stores' sparse due index, statewright.due): idle machines cost
a run nothing."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from statewright.aws import codebuild_executor as cb
from statewright.aws.dispatch import codebuild_state_change
from statewright.aws.wiring import Runtime
from statewright.model import Machine
from statewright.report_tokens import ReportedAttempt

BATCH_GET_BUILDS = 100  # BatchGetBuilds' limit
# A pending task younger than this may have its start in flight in the dispatcher.
PENDING_GRACE_SECONDS = 120.0


@dataclass
class ReconcileReport:
    recovery: dict[str, Any] = field(default_factory=dict)
    builds_checked: int = 0
    builds_completed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def add_running_builds(rt: Runtime, builds: dict[str, dict[str, str]], machine: Machine) -> None:
    """The machine's running terraform attempts, into ``builds``: build id -> the
    STATEWRIGHT_* variables that name its attempt and its report token (the build's own,
    which BatchGetBuilds lists too)."""
    for name, record in machine.current_tasks().items():
        if record.executor == "terraform" and record.status == "running" and record.run_id:
            builds[record.run_id] = {
                cb.MACHINE_ID: machine.id,
                cb.TASK: name,
                cb.EPOCH: str(record.epoch),
                cb.ATTEMPT: str(record.attempt),
                cb.REPORT_TOKEN: rt.report_tokens.token(
                    ReportedAttempt(
                        machine.id, machine.created_at, record.epoch, name, record.attempt
                    )
                ),
            }


def _as_event_detail(build: Any, attempt: dict[str, str]) -> dict[str, Any]:
    """A BatchGetBuilds build in the shape of a ``Build State Change`` detail; the
    attempt's variables fill in any the build does not list."""
    variables = list(build.get("environment", {}).get("environmentVariables", []))
    listed = {v.get("name") for v in variables}
    variables += [
        {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in attempt.items() if k not in listed
    ]
    return {
        "build-status": build.get("buildStatus", ""),
        "build-id": build.get("arn") or build.get("id", ""),
        "project-name": build.get("projectName", ""),
        "additional-information": {"environment": {"environment-variables": variables}},
    }


def reconcile(rt: Runtime) -> ReconcileReport:
    report = ReconcileReport()
    # One pass over the machines with work (a running attempt is work: the sparse due
    # index holds it): recovery repairs each, then its running builds are noted.
    attempts: dict[str, dict[str, str]] = {}
    recovery = rt.service.recover(
        pending_grace_seconds=PENDING_GRACE_SECONDS,
        visit=functools.partial(add_running_builds, rt, attempts),
    )
    report.recovery = asdict(recovery)
    ids = sorted(attempts)
    for i in range(0, len(ids), BATCH_GET_BUILDS):
        response = rt.codebuild.batch_get_builds(ids=ids[i : i + BATCH_GET_BUILDS])
        for build in response.get("builds", []):
            report.builds_checked += 1
            if build.get("buildStatus") == "IN_PROGRESS":
                continue
            attempt = attempts.get(build.get("id", ""), {})
            machine_id = attempt.get(cb.MACHINE_ID, "?")
            # One machine's failure to complete its build leaves the others to go on.
            rt.service.isolated(machine_id, report.errors, _complete, rt, build, attempt, report)
    return report


def _complete(rt: Runtime, build: Any, attempt: dict[str, str], report: ReconcileReport) -> None:
    outcome = codebuild_state_change(rt, _as_event_detail(build, attempt))
    report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    if outcome == "applied":
        report.builds_completed += 1
