"""Access rules: who may do what to which machine (docs/security.md, "Access rules").

A rule names ``principals`` (patterns), ``actions``, ``specs``, ``events`` and
``machines`` (id patterns); a field left out matches everything, and ``events``
constrains only ``send``. A request is allowed when some rule matches all of its parts.
In a pattern ``*`` stands for any run of characters (``/`` and ``:`` included); every
other character stands for itself. An assumed-role caller
(``arn:aws:sts::A:assumed-role/R/S``) also matches as its role, ``arn:aws:iam::A:role/R``.

This module is pure: it decides from the rules and the request alone. Where the spec of
a machine is only known after reading it, the service asks :meth:`AccessPolicy.could_allow`
before the read and :meth:`AccessPolicy.allows` after it (statewright.service)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from statewright.model import SYSTEM_EVENTS

Action = Literal["create", "send", "retry", "ttl", "read"]
ACTIONS: tuple[Action, ...] = ("create", "send", "retry", "ttl", "read")
# The principal of the HTTP API locally when the server has no tokens.
LOCAL_PRINCIPAL = "local"

_ASSUMED_ROLE = re.compile(r"^arn:(aws(?:-[a-z]+)*):sts::(\d{12}):assumed-role/([^/]+)/.+$")

NonEmpty = Annotated[str, Field(min_length=1, max_length=2048)]
# A list that is given must name something: an empty one would match nothing, which is
# never what a rule means (leave the field out to match everything).
Names = Annotated[tuple[NonEmpty, ...], Field(min_length=1)]


def role_arn_of(principal: str) -> str | None:
    """``arn:aws:iam::A:role/R`` for an assumed-role session ARN, else None."""
    found = _ASSUMED_ROLE.match(principal)
    if found is None:
        return None
    partition, account, role = found.groups()
    return f"arn:{partition}:iam::{account}:role/{role}"


@functools.lru_cache(maxsize=1024)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*`` is any run of characters; everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class AccessRule(BaseModel):
    """One rule; each field left out matches everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principals: Names | None = Field(
        default=None, description="caller patterns: IAM ARNs on AWS, token names locally"
    )
    actions: Annotated[tuple[Action, ...], Field(min_length=1)] | None = None
    specs: Names | None = None
    events: Names | None = Field(default=None, description="the events `send` may send")
    machines: Names | None = Field(default=None, description="machine id patterns")

    def matches_principal(self, names: Sequence[str]) -> bool:
        """``names``: the caller's principal, and its role ARN for an assumed role."""
        return self.principals is None or any(
            pattern_regex(p).fullmatch(n) for p in self.principals for n in names
        )

    def matches_machine(self, machine_id: str) -> bool:
        return self.machines is None or any(
            pattern_regex(p).fullmatch(machine_id) for p in self.machines
        )

    def matches_action(self, action: Action, event: str | None) -> bool:
        if self.actions is not None and action not in self.actions:
            return False
        return action != "send" or self.events is None or event in self.events

    def matches_spec(self, spec: str | None) -> bool:
        """``spec=None``: not known yet, so any spec might match."""
        return self.specs is None or spec is None or spec in self.specs


_RULES = TypeAdapter(tuple[AccessRule, ...])


class AccessPolicy:
    """The rules of one control plane. Without a policy (None where one is expected),
    every authenticated caller may do everything."""

    def __init__(self, rules: Iterable[AccessRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def parse(cls, data: Any) -> AccessPolicy:
        """Rules from their JSON value (a list of objects); InvalidRules naming the rule's
        index and field otherwise."""
        try:
            return cls(_RULES.validate_python(data))
        except ValidationError as exc:
            raise InvalidRules(describe_errors(exc)) from exc

    @classmethod
    def from_json(cls, text: str) -> AccessPolicy:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidRules(f"the access rules are not valid JSON: {exc}") from exc
        return cls.parse(data)

    def allows(
        self,
        principal: str,
        action: Action,
        *,
        spec: str,
        machine_id: str,
        event: str | None = None,
    ) -> bool:
        """Whether some rule allows this request, every part of it known."""
        return self._matching(principal, action, spec, machine_id, event)

    def could_allow(
        self,
        principal: str,
        action: Action,
        *,
        machine_id: str,
        event: str | None = None,
        spec: str | None = None,
    ) -> bool:
        """Whether some rule allows the request for some spec (or for ``spec`` when the
        request names it): what can be decided before the machine is read."""
        return self._matching(principal, action, spec, machine_id, event)

    def _matching(
        self, principal: str, action: Action, spec: str | None, machine_id: str, event: str | None
    ) -> bool:
        names = [principal]
        role = role_arn_of(principal)
        if role is not None:
            names.append(role)
        return any(
            rule.matches_action(action, event)
            and rule.matches_spec(spec)
            and rule.matches_machine(machine_id)
            and rule.matches_principal(names)
            for rule in self.rules
        )

    def problems(self, events_by_spec: Mapping[str, Sequence[str]]) -> list[str]:
        """What the rules name that the deployed specs do not have: an unknown spec, or
        an event no spec the rule covers declares. One line per problem, with the
        rule's index."""
        known = sorted(events_by_spec)
        out: list[str] = []
        for index, rule in enumerate(self.rules):
            for spec in rule.specs or ():
                if spec not in events_by_spec:
                    out.append(
                        f"access[{index}].specs: no spec named {spec!r}; "
                        f"specs: {', '.join(known) or 'none'}"
                    )
            covered = [s for s in (rule.specs or known) if s in events_by_spec]
            declared = sorted({e for s in covered for e in events_by_spec[s]})
            for event in rule.events or ():
                if event in SYSTEM_EVENTS:
                    out.append(
                        f"access[{index}].events: {event} is a system event, which no "
                        "caller can send"
                    )
                elif event not in declared:
                    where = f"spec {', '.join(covered)}" if rule.specs else "any spec"
                    out.append(
                        f"access[{index}].events: {event!r} is not an event of {where}; "
                        f"declared: {', '.join(declared) or 'none'}"
                    )
        return out


class InvalidRules(ValueError):
    """Access rules that do not parse; the message names each rule's index and field."""


def describe_errors(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors:
        loc = list(err["loc"])
        inner = [
            e for e in errors if len(e["loc"]) > len(loc) and list(e["loc"][: len(loc)]) == loc
        ]
        if err["type"] == "too_short" and inner:
            continue  # pydantic counts the refused items out: their own errors say why
        where = "access" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        why = str(err["msg"])
        if err["type"] in ("tuple_type", "list_type"):
            why = "must be a list" + (" of rules" if not loc else "")
        elif err["type"] == "extra_forbidden":
            why = f"is not a rule field (fields: {', '.join(AccessRule.model_fields)})"
        elif err["type"] == "literal_error":
            why = f"is not an action (actions: {', '.join(ACTIONS)})"
        elif err["type"] == "too_short":
            why = "is empty: leave the field out to match everything"
        parts.append(f"{where} {why}")
    return "invalid access rules: " + "; ".join(parts)
