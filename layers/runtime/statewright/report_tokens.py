"""Report tokens: a CodeBuild build may report only its own task.

User Terraform runs with the build's role, which may put ``Task Finished`` on the control
plane's bus. So the executor hands each build a token for the one attempt it runs, an
HMAC-SHA256 (with the deployment's page-token key, see ``Store.page_token_key``) of the
attempt's identity: machine, incarnation (its created_at), epoch, task and attempt. The
build sends it back in its report, and the dispatcher accepts a report of such a task
only with the token of exactly that attempt, see
docs/security.md#task-reports-a-build-may-report-only-its-own-task.

Deterministic: every start of one attempt passes the same token, so StartBuild's
parameters, and with them its idempotency token, stay the same."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import NamedTuple

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
