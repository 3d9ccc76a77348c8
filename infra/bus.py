"""The control plane's own EventBridge bus, ``statewright-<env>``.

Internal messages (``NEXT``/``FAILED`` machine events and ``Task Finished``) carry
``source: statewright``. The bus policy denies that source to every principal but the
control plane's own roles, so no other identity in the account can forge them; the rules
(``infra/rules.py``) only let those messages through from that source.

Of those roles, the two that run tasks (the Terraform runner, whose role users' modules
run with, and the task runner) may put only what they must: a ``Task Finished`` (and
the task runner's on-failure destination its Lambda failure record), never a
``Machine Event`` or anything else (``grant_put_only``). Their reports must carry the
attempt's report token besides: see
docs/security.md#task-reports-a-run-may-report-only-its-own-attempt.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.settings import BusSenders

INTERNAL_SOURCE = "statewright"
TASK_FINISHED = "Task Finished"
# What Lambda's on-failure destination puts on a bus (source and detail-type).
LAMBDA_FAILURE = ("lambda", "Lambda Function Invocation Result - Failure")


class ControlBus(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.bus_name = f"statewright-{env_name}"
        self.bus = events.EventBus(self, "Bus", event_bus_name=self.bus_name)

    def grant_put(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[self.bus.event_bus_arn])
        )

    def grant_put_only(self, role: iam.IRole, sid: str, source: str, detail_type: str) -> None:
        """PutEvents on this bus for entries of this source and detail-type alone: every
        entry of a call must match (``ForAllValues``), and a call without either key is
        not allowed (``Null``), which ``ForAllValues`` alone would let through."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={
                    "ForAllValues:StringEquals": {
                        "events:source": [source],
                        "events:detail-type": [detail_type],
                    },
                    "Null": {"events:source": "false", "events:detail-type": "false"},
                },
            )
        )

    def grant_task_reports(self, role: iam.IRole) -> None:
        """A task run's role: it may put its ``Task Finished`` and nothing else."""
        self.grant_put_only(role, "PutTaskFinishedOnly", INTERNAL_SOURCE, TASK_FINISHED)

    def failure_destination(self, role: iam.IRole) -> lambda_.IDestination:
        """This bus as a function's on-failure destination, with ``role`` (the
        function's, which Lambda delivers the record with) allowed to put that record
        alone. CDK's own EventBridgeDestination would grant PutEvents of anything."""
        self.grant_put_only(role, "PutLambdaFailureRecordOnly", *LAMBDA_FAILURE)
        return typing.cast(lambda_.IDestination, _BusDestination(self.bus.event_bus_arn))

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


@jsii.implements(lambda_.IDestination)
class _BusDestination:
    """A bus as a Lambda destination, granting nothing itself (see failure_destination)."""

    def __init__(self, bus_arn: str) -> None:
        self._bus_arn = bus_arn

    # jsii hands bind the options as one positional struct (as it does try_bundle in
    # infra/bundling.py), not the keywords the generated protocol declares.
    def bind(
        self, _scope: Construct, _fn: lambda_.IFunction, _options: lambda_.DestinationOptions
    ) -> lambda_.DestinationConfig:
        return lambda_.DestinationConfig(destination=self._bus_arn)
