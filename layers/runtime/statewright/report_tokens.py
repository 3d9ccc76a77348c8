"""Report tokens: a task run may report only its own attempt.

On AWS a ``Task Finished`` arrives over the control plane's bus, which more than the
control plane's own code can put on: user Terraform runs with the CodeBuild role, which
must put its build's report there. So every attempt gets a token when it starts, an
HMAC-SHA256 (with the deployment's page-token key, see ``Store.page_token_key``) of the
attempt's identity: machine, incarnation (its created_at), epoch, task and attempt. The
executor hands it to the run (the task runner's payload, the build's environment, a
plugin's ``invocation.report_token``), the run's report carries it back, and the service
applies a report only with the token of exactly the attempt it names, see
docs/security.md#task-reports-a-run-may-report-only-its-own-attempt.

Deterministic: every start of one attempt passes the same token, so StartBuild's
parameters, and with them its idempotency token, stay the same.

Locally reports never cross a trust boundary (the executors run in the server's process
and publish on its in-process bus), so the local service has no ReportTokens."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from statewright.errors import Forbidden
from statewright.model import Machine, TaskFinishedDetail, TaskInvocation

_SCOPE = b"statewright report token v1\n"  # never the message of a page token's MAC


class ReportedAttempt(NamedTuple):
    """The identity of one attempt, which its token is for."""

    machine_id: str
    incarnation: str  # the machine's created_at
    epoch: int
    task: str
    attempt: int


def report_token(key: bytes, attempt: ReportedAttempt) -> str:
    """The token of one attempt (hex)."""
    identity = json.dumps(list(attempt), separators=(",", ":"))
    return hmac.new(key, _SCOPE + identity.encode(), hashlib.sha256).hexdigest()


def is_report_token(token: object, key: bytes, attempt: ReportedAttempt) -> bool:
    """Whether ``token`` (as a report carried it, of any type) is that attempt's token."""
    if not isinstance(token, str):
        return False
    expected = report_token(key, attempt).encode()
    # A JSON string may hold a lone surrogate, which strict UTF-8 cannot encode.
    return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected)


class ForgedReport(Forbidden):
    """A Task Finished without the report token of the attempt it names."""


@dataclass(frozen=True)
class ReportTokens:
    """Signs each attempt as it starts and checks each report against the machine as
    read for the write (so the check and the write see the same incarnation). ``key``
    loads the deployment's key (once; the store caches it)."""

    key: Callable[[], bytes]

    def token(self, attempt: ReportedAttempt) -> str:
        return report_token(self.key(), attempt)

    def sign(self, invocation: TaskInvocation) -> TaskInvocation:
        """The invocation with its attempt's report token."""
        attempt = ReportedAttempt(
            invocation.machine_id,
            invocation.incarnation,
            invocation.epoch,
            invocation.task,
            invocation.attempt,
        )
        return invocation.model_copy(update={"report_token": self.token(attempt)})

    def check(self, report: TaskFinishedDetail, machine: Machine) -> None:
        """ForgedReport unless ``report`` carries the token of the attempt it names on
        this incarnation of the machine."""
        attempt = ReportedAttempt(
            machine.id, machine.created_at, report.epoch, report.task, report.attempt
        )
        if not is_report_token(report.report_token, self.key(), attempt):
            raise ForgedReport(
                f"Task Finished of task {report.task} (epoch {report.epoch}, attempt "
                f"{report.attempt}) of machine {machine.id} does not carry that attempt's "
                "report token: only the run started for an attempt may report it"
            )
