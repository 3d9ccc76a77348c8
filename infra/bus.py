"""The control plane's own EventBridge bus, ``statewright-<env>``.

Internal messages (``NEXT``/``FAILED`` machine events and ``Task Finished``) carry
``source: statewright``. The bus policy denies that source to every principal but the
control plane's own roles, so no other identity in the account can forge them; the rules
(``infra/rules.py``) only let those messages through from that source.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

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
