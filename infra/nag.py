"""cdk-nag AwsSolutions as a CDK validation plugin (cdk-nag 3.x): any finding not
acknowledged here, with a written reason, fails the synth."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def enable_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Accept one finding (``AwsSolutions-IAM5[Resource::*]`` style ids for rules with
    several findings) on scope and its children. The reason is kept in the cloud
    assembly's validation report."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {finding} needs a real reason, not {reason!r}")
    # The plugin-qualified id, as cdk-nag's own report spells it ("Acknowledge with ...").
    rule_id = f"{PACK}::{finding}"
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def finding_resource(scope: IConstruct, value: str) -> str:
    """How a finding names a (possibly tokenized) ARN: ``<AWS::Region>`` for a Ref,
    ``<Logical.Arn>`` for a GetAtt, the text itself for a literal."""
    return _render(cdk.Stack.of(scope).resolve(value))


def _render(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_render(part) for part in parts)
    raise ValueError(f"cannot name {value!r} as cdk-nag does")
