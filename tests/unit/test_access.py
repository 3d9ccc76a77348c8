"""The access rules (statewright.access): parsing, matching, and a property test that
the decision equals a direct reading of the rules by a small reference implementation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statewright.access import ACTIONS, AccessPolicy, InvalidRules, role_arn_of

from tests.integration.access_cases import ACCOUNT, CI, CI_ROLE, RULES

# docs/security.md's example (the first three rules of the shared integration cases)
EXAMPLE = RULES[:3]
CI_SESSION = CI


# ---- a reference reading of the rules, written for obviousness, not speed ------------


def ref_glob(pattern: str, text: str) -> bool:
    """``*`` matches any run of characters; everything else matches itself."""
    if not pattern:
        return not text
    if pattern[0] == "*":
        return any(ref_glob(pattern[1:], text[i:]) for i in range(len(text) + 1))
    return bool(text) and text[0] == pattern[0] and ref_glob(pattern[1:], text[1:])


def ref_names(principal: str) -> list[str]:
    """The principal, and for arn:<p>:sts::<a>:assumed-role/<r>/<s> also its role ARN."""
    names = [principal]
    parts = principal.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sts" and parts[5]:
        kind, _, rest = parts[5].partition("/")
        role, _, session = rest.partition("/")
        partition, account = parts[1], parts[4]
        if (
            kind == "assumed-role"
            and role
            and session
            and (partition == "aws" or partition.startswith("aws-"))
            and len(account) == 12
            and account.isdigit()
        ):
            names.append(f"arn:{partition}:iam::{account}:role/{role}")
    return names


def ref_allows(
    rules: list[dict[str, Any]],
    principal: str,
    action: str,
    spec: str,
    machine_id: str,
    event: str | None,
) -> bool:
    for rule in rules:
        if "principals" in rule and not any(
            ref_glob(p, n) for p in rule["principals"] for n in ref_names(principal)
        ):
            continue
        if "actions" in rule and action not in rule["actions"]:
            continue
        if "specs" in rule and spec not in rule["specs"]:
            continue
        if "machines" in rule and not any(ref_glob(p, machine_id) for p in rule["machines"]):
            continue
        if action == "send" and "events" in rule and event not in rule["events"]:
            continue
        return True
    return False


# ---- strategies: small alphabets, so random patterns and names do meet --------------

SPECS = ["preview-env", "tenant-lifecycle", "jobs"]
EVENTS = ["LAUNCH", "DESTROY", "OFFBOARD"]
PRINCIPALS = [
    "local",
    "ci",
    CI_ROLE,
    CI_SESSION,
    f"arn:aws:sts::{ACCOUNT}:assumed-role/platform/ana",
    f"arn:aws:iam::{ACCOUNT}:user/ana",
    "arn:aws-cn:sts::210987654321:assumed-role/ci/x",
    "arn:aws:sts::12345:assumed-role/ci/short-account",
]
text = st.text(alphabet="ab-*:/", min_size=1, max_size=6)
principal_patterns = st.one_of(
    text, st.sampled_from(PRINCIPALS), st.sampled_from(PRINCIPALS).map(lambda p: p[:-3] + "*")
)
machine_ids = st.text(alphabet="ab-1", min_size=1, max_size=5)
machine_patterns = st.one_of(text, machine_ids)


def some(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, min_size=1, max_size=3)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "principals": some(principal_patterns),
        "actions": some(st.sampled_from(ACTIONS)),
        "specs": some(st.sampled_from(SPECS)),
        "events": some(st.sampled_from(EVENTS)),
        "machines": some(machine_patterns),
    }
    return {k: draw(v) for k, v in fields.items() if draw(st.booleans())}


requests = st.tuples(
    st.one_of(st.sampled_from(PRINCIPALS), text),
    st.sampled_from(ACTIONS),
    st.sampled_from(SPECS),
    machine_ids,
    st.one_of(st.none(), st.sampled_from(EVENTS)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(rules(), max_size=4), st.lists(requests, min_size=1, max_size=8))
def test_the_decision_is_a_direct_reading_of_the_rules(
    rule_list: list[dict[str, Any]], asked: list[tuple[str, str, str, str, str | None]]
) -> None:
    policy = AccessPolicy.parse(rule_list)
    for principal, action, spec, machine_id, event in asked:
        expected = ref_allows(rule_list, principal, action, spec, machine_id, event)
        got = policy.allows(principal, action, spec=spec, machine_id=machine_id, event=event)  # type: ignore[arg-type]
        assert got == expected, (principal, action, spec, machine_id, event)
        # Before the machine is read (its spec unknown) a request may pass only when
        # some spec would allow it; with the spec named, the answer is the decision.
        could = policy.could_allow(principal, action, machine_id=machine_id, event=event)  # type: ignore[arg-type]
        assert could == any(
            ref_allows(rule_list, principal, action, s, machine_id, event) for s in SPECS
        )
        named = policy.could_allow(
            principal,
            action,  # type: ignore[arg-type]
            machine_id=machine_id,
            event=event,
            spec=spec,
        )
        assert named == expected


# ---- the rules in examples ----------------------------------------------------------


def test_the_documented_example_policy() -> None:
    policy = AccessPolicy.parse(EXAMPLE)
    platform = f"arn:aws:sts::{ACCOUNT}:assumed-role/platform/ana"

    def allows(who: str, action: str, spec: str, machine: str, event: str | None = None) -> bool:
        return policy.allows(who, action, spec=spec, machine_id=machine, event=event)  # type: ignore[arg-type]

    # CI launches and destroys pr-* of preview-env, as its role or any session of it
    for who in (CI_ROLE, CI_SESSION):
        assert allows(who, "create", "preview-env", "pr-17")
        assert allows(who, "send", "preview-env", "pr-17", "LAUNCH")
        assert allows(who, "send", "preview-env", "pr-17", "DESTROY")
        assert allows(who, "read", "preview-env", "pr-17")
        assert not allows(who, "retry", "preview-env", "pr-17")
        assert not allows(who, "create", "preview-env", "main")
        assert not allows(who, "send", "tenant-lifecycle", "pr-17", "OFFBOARD")
        assert not allows(who, "read", "tenant-lifecycle", "acme")
    # only the platform role touches tenants; it reads everything
    assert allows(platform, "send", "tenant-lifecycle", "acme", "OFFBOARD")
    assert allows(platform, "retry", "tenant-lifecycle", "acme")
    assert allows(platform, "read", "preview-env", "pr-17")
    assert not allows(platform, "send", "preview-env", "pr-17", "DESTROY")
    # a session of another role, or of the same role name in another account, is not CI
    assert not allows(f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-admin/x", "read", "jobs", "pr-1")
    assert not allows(
        "arn:aws:sts::210987654321:assumed-role/ci/x", "create", "preview-env", "pr-1"
    )


def test_patterns_take_star_for_any_run_and_everything_else_literally() -> None:
    policy = AccessPolicy.parse([{"principals": ["arn:aws:iam::*:role/ci.*"], "machines": ["a?*"]}])
    role = "arn:aws:iam::123456789012:role/ci.deploy"
    assert policy.allows(role, "read", spec="s", machine_id="a?1")
    assert policy.allows(role, "read", spec="s", machine_id="a?")
    assert not policy.allows(role, "read", spec="s", machine_id="ab")  # ? is no wildcard
    assert not policy.allows("arn:aws:iam::1:role/ciXdeploy", "read", spec="s", machine_id="a?")


def test_events_constrain_only_send() -> None:
    policy = AccessPolicy.parse([{"events": ["LAUNCH"]}])
    assert policy.allows("anyone", "send", spec="s", machine_id="m", event="LAUNCH")
    assert not policy.allows("anyone", "send", spec="s", machine_id="m", event="DESTROY")
    for action in ("create", "retry", "ttl", "read"):
        assert policy.allows("anyone", action, spec="s", machine_id="m")  # type: ignore[arg-type]


def test_no_rules_allow_nothing() -> None:
    policy = AccessPolicy.parse([])
    assert not policy.could_allow("local", "read", machine_id="m")


@pytest.mark.parametrize(
    ("principal", "role"),
    [
        (CI_SESSION, CI_ROLE),
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/r/s",
            "arn:aws-us-gov:iam::123456789012:role/r",
        ),
        ("arn:aws:sts::123456789012:assumed-role/r", None),
        (CI_ROLE, None),
        ("arn:aws:sts::123456789012:federated-user/bob", None),
        ("local", None),
    ],
)
def test_role_of_an_assumed_role_session(principal: str, role: str | None) -> None:
    assert role_arn_of(principal) == role


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ({"principals": ["x"]}, "access must be a list of rules"),
        ([{"actions": ["delete"]}], "access[0].actions[0] is not an action"),
        ([{}, {"machine": ["a"]}], "access[1].machine is not a rule field"),
        ([{"specs": []}], "access[0].specs is empty: leave the field out to match everything"),
        ([{"principals": [""]}], "access[0].principals[0] String should have at least 1"),
        ([{"principals": "ci"}], "access[0].principals must be a list"),
    ],
)
def test_invalid_rules_name_the_rule_and_field(rules: Any, says: str) -> None:
    with pytest.raises(InvalidRules) as raised:
        AccessPolicy.parse(rules)
    assert says in str(raised.value)


def test_invalid_json_is_said_so() -> None:
    with pytest.raises(InvalidRules, match="not valid JSON"):
        AccessPolicy.from_json("[{")


def test_rules_are_checked_against_the_specs_with_their_index() -> None:
    policy = AccessPolicy.parse(
        [
            {"specs": ["preview-env"], "events": ["LAUNCH"]},
            {"specs": ["preview"]},
            {"specs": ["preview-env"], "events": ["OFFBOARD"]},
            {"events": ["OFFBOARD", "NEXT"]},
        ]
    )
    problems = policy.problems(
        {"preview-env": ["LAUNCH", "DESTROY"], "tenant-lifecycle": ["ACTIVATE", "OFFBOARD"]}
    )
    assert problems == [
        "access[1].specs: no spec named 'preview'; specs: preview-env, tenant-lifecycle",
        "access[2].events: 'OFFBOARD' is not an event of spec preview-env; "
        "declared: DESTROY, LAUNCH",
        "access[3].events: NEXT is a system event, which no caller can send",
    ]
