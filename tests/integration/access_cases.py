"""One access policy and the answers it must give, shared by the AWS test (through the
dispatcher under moto, callers told apart by API Gateway's ``identity.userArn``) and
the local one (a real ``statewright serve --access FILE``), so both modes are held to
the same table. The policy is docs/security.md's example plus rules for ``local``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

ACCOUNT = "123456789012"
CI_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci"
CI = f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/github-run-42"
PLATFORM = f"arn:aws:sts::{ACCOUNT}:assumed-role/platform/ana"
DEVELOPER = f"arn:aws:iam::{ACCOUNT}:user/dev"
LOCAL = "local"

RULES: list[dict[str, Any]] = [
    # CI may launch and destroy pr-* of preview-env (and watch them)
    {
        "principals": [CI_ROLE],
        "actions": ["create", "send", "read"],
        "specs": ["preview-env"],
        "events": ["LAUNCH", "DESTROY"],
        "machines": ["pr-*"],
    },
    # only the platform role may touch tenants; it may read everything
    {"principals": [f"arn:aws:iam::{ACCOUNT}:role/platform"], "specs": ["tenant-lifecycle"]},
    {"principals": [f"arn:aws:iam::{ACCOUNT}:role/platform"], "actions": ["read"]},
    # the local caller: preview environments pr-*, LAUNCH only; it may create tenants
    # t-* and pr-tenant, but neither read nor touch them afterwards
    {
        "principals": [LOCAL],
        "actions": ["create", "send", "read"],
        "specs": ["preview-env"],
        "events": ["LAUNCH"],
        "machines": ["pr-*"],
    },
    {
        "principals": ["loc*"],
        "actions": ["create"],
        "specs": ["tenant-lifecycle"],
        "machines": ["t-*", "pr-tenant"],
    },
]

Call = Callable[[str, str, Any], tuple[int, Any]]  # (method, path, body) -> (status, body)

# (method, path, body, status) for the local caller, in order; the same in both modes.
LOCAL_STEPS: list[tuple[str, str, Any, int]] = [
    ("POST", "/machines", {"spec": "preview-env", "id": "pr-1"}, 201),
    ("POST", "/machines", {"spec": "preview-env", "id": "main"}, 403),
    ("POST", "/machines", {"spec": "tenant-lifecycle", "id": "pr-2"}, 403),
    ("POST", "/machines", {"spec": "tenant-lifecycle", "id": "t-1"}, 201),
    ("POST", "/machines", {"spec": "tenant-lifecycle", "id": "pr-tenant"}, 201),
    ("POST", "/machines/pr-1/events", {"event": "DESTROY"}, 403),
    ("POST", "/machines/pr-1/events", {"event": "LAUNCH"}, 202),
    ("POST", "/machines/pr-1/retry", None, 403),
    ("POST", "/machines/pr-1/ttl", {"ttl": "1h"}, 403),
    ("GET", "/machines/pr-1", None, 200),
    ("GET", "/machines/pr-1/history", None, 200),
    # refused before any lookup: no rule lets local read t-*, existing or not
    ("GET", "/machines/t-1", None, 403),
    ("GET", "/machines/t-404", None, 403),
    ("POST", "/machines/t-1/events", {"event": "OFFBOARD"}, 403),
    # pr-tenant exists but is a tenant: local may read pr-* of preview-env only, so it
    # gets exactly what a missing pr-* machine gets
    ("GET", "/machines/pr-tenant", None, 404),
    ("GET", "/machines/pr-404", None, 404),
    ("GET", "/machines/pr-tenant/history", None, 404),
    ("POST", "/machines/pr-tenant/events", {"event": "LAUNCH"}, 404),
    ("POST", "/machines/pr-404/events", {"event": "LAUNCH"}, 404),
    # a new preview environment on its first event, as CI launches them
    ("POST", "/machines/pr-3/events", {"event": "LAUNCH", "spec": "preview-env"}, 202),
]


def run_local_steps(call: Call) -> list[tuple[int, Any]]:
    """Every step's answer (error bodies whole, machines by id, spec and state),
    asserting each status."""
    answers = []
    for method, path, body, status in LOCAL_STEPS:
        got, answer = call(method, path, body)
        assert got == status, (method, path, body, got, answer)
        answers.append((got, comparable(answer)))
    return answers


def comparable(answer: Any) -> Any:
    """What two modes must agree on in an answer (not timestamps or task outcomes)."""
    if isinstance(answer, dict) and "error" in answer:
        return answer
    if isinstance(answer, dict) and "entries" in answer:
        return [(e["kind"], e["source"], e["actor"]) for e in answer["entries"][:3]]
    if isinstance(answer, dict) and "id" in answer:
        return (answer["id"], answer["spec"], answer["state"])
    return answer


def hidden_alike(call: Call, existing: str, missing: str) -> None:
    """A machine the caller may not read answers every request exactly as a missing
    one does, ids aside: a refusal tells nothing about whether it exists."""
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/machines/{}", None),
        ("GET", "/machines/{}/history", None),
        ("POST", "/machines/{}/events", {"event": "LAUNCH"}),
        ("POST", "/machines/{}/events", {"event": "DESTROY"}),
        ("POST", "/machines/{}/events", {"event": "OFFBOARD"}),
        ("POST", "/machines/{}/retry", None),
        ("POST", "/machines/{}/ttl", {"ttl": "1h"}),
    ]
    for method, path, body in requests:
        first = call(method, path.format(existing), body)
        second = call(method, path.format(missing), body)
        assert first[0] in (403, 404), (method, path, first)
        shown = json_text(first).replace(existing, "<id>")
        assert shown == json_text(second).replace(missing, "<id>"), (method, path)


def json_text(answer: tuple[int, Any]) -> str:
    return json.dumps(answer, sort_keys=True)
