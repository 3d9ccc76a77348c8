"""cdk-nag AwsSolutions as a CDK validation plugin (cdk-nag 3.x): any finding not
acknowledged here, with a written reason, fails the synth."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def enable_nag(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Accept one finding (``AwsSolutions-IAM5[Resource::*]`` style ids for rules with
    several findings) on scope and its children. The reason is kept in the cloud
    assembly's validation report."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledging {finding} needs a real reason, not {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of an L2's resource, as findings spell it."""
    child = construct.node.default_child
    if not isinstance(child, cdk.CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource of its own")
    stack = cdk.Stack.of(construct)
    resolved = stack.resolve(stack.get_logical_id(child))
    assert isinstance(resolved, str)
    return resolved
