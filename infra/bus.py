"""The control plane's own EventBridge bus, ``statewright-<env>``.

Internal messages (``NEXT``/``FAILED`` machine events and ``Task Finished``) carry
``source: statewright``. The bus policy denies that source to every principal but the
control plane's own roles, so no other identity in the account can forge them; the rules
(``infra/rules.py``) only let those messages through from that source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.settings import BusSenders

INTERNAL_SOURCE = "statewright"


class ControlBus(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.bus_name = f"statewright-{env_name}"
        self.bus = events.EventBus(self, "Bus", event_bus_name=self.bus_name)

    def grant_put(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[self.bus.event_bus_arn])
        )

    def admit_only(self, senders: BusSenders, roles: Sequence[iam.IRole]) -> None:
        """cdk.json's ``bus_senders``: deny PutEvents with any source but those listed to
        every principal but the control plane's ``roles`` (whose ``statewright`` and
        Lambda destination events stay theirs); let the listed accounts send those."""
        conditions: dict[str, Any] = {
            "ArnNotEquals": {"aws:PrincipalArn": [role.role_arn for role in roles]}
        }
        if senders.sources:  # none listed: nobody but the control plane sends
            conditions["StringNotLike"] = {"events:source": senders.sources}
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyListedSourcesSendEvents",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions=conditions,
            )
        )
        if senders.accounts and senders.sources:
            self.bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ListedAccountsSendListedSources",
                    principals=[iam.AccountPrincipal(a) for a in senders.accounts],
                    actions=["events:PutEvents"],
                    resources=[self.bus.event_bus_arn],
                    conditions={"StringLike": {"events:source": senders.sources}},
                )
            )

    def trust_internal_source_only_from(self, roles: Sequence[iam.IRole]) -> None:
        """Deny PutEvents with ``source: statewright`` to all but these roles."""
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyControlPlaneSendsInternalEvents",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={
                    "StringEquals": {"events:source": INTERNAL_SOURCE},
                    "ArnNotEquals": {"aws:PrincipalArn": [role.role_arn for role in roles]},
                },
            )
        )
