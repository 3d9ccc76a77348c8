"""What the cost benchmark takes from the deployment itself: the table (key schema,
indexes and their projections), each function's memory and architecture, and which API
Gateway API fronts it, read from the template the CDK app synthesizes — so the benchmark
prices what would be deployed.

Synthesizing takes a while (it bundles the layer), so the smoke test uses
:func:`from_layout` instead: the table from ``statewright.aws.table_layout`` and the
memory sizes passed in."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TEMPLATE_ENV = "dev"
FUNCTION_ROLES = {"dispatcher": "-dispatcher", "task_runner": "-taskrunner"}


@dataclass(frozen=True)
class Function:
    memory_mb: int
    architecture: str  # arm64 | x86_64


# The template's API resource -> cdk.json's api.type (and STATEWRIGHT_API_TYPE).
API_RESOURCES = {"AWS::ApiGateway::RestApi": "rest", "AWS::ApiGatewayV2::Api": "http"}


@dataclass(frozen=True)
class Deployment:
    table: dict[str, Any]  # KeySchema, AttributeDefinitions, GlobalSecondaryIndexes
    functions: Mapping[str, Function]  # by role: dispatcher, task_runner
    source: str
    api_type: str = "rest"  # which API Gateway API: rest | http


def from_template(api_type: str | None = None) -> Deployment:
    """The facts of TEMPLATE_ENV as cdk.json declares it, or with ``api.type`` set to
    ``api_type``."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app, repository_context
    from infra.settings import CONTEXT_KEY

    context = None
    if api_type is not None:
        context = repository_context()
        context[CONTEXT_KEY][TEMPLATE_ENV]["api"] = {"type": api_type}
    with tempfile.TemporaryDirectory(prefix="statewright-bench-synth-") as outdir:
        assembly = build_app(TEMPLATE_ENV, outdir=outdir, context=context).synth()
        resources = [
            (stack.stack_name, resource)
            for stack in assembly.stacks
            for resource in stack.template.get("Resources", {}).values()
        ]
    tables = [
        (name, r["Properties"]) for name, r in resources if r["Type"] == "AWS::DynamoDB::Table"
    ]
    if len(tables) != 1:
        raise RuntimeError(f"expected one AWS::DynamoDB::Table in the template, got {len(tables)}")
    stack_name, props = tables[0]
    functions: dict[str, Function] = {}
    for _, resource in resources:
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        p = resource["Properties"]
        for role, suffix in FUNCTION_ROLES.items():
            if str(p.get("FunctionName", "")).endswith(suffix):
                functions[role] = Function(
                    memory_mb=int(p.get("MemorySize", 128)),
                    architecture=(p.get("Architectures") or ["x86_64"])[0],
                )
    apis = [API_RESOURCES[r["Type"]] for _, r in resources if r["Type"] in API_RESOURCES]
    if len(apis) != 1:
        raise RuntimeError(f"expected one API Gateway API in the template, got {apis}")
    missing = set(FUNCTION_ROLES) - set(functions)
    if missing:
        raise RuntimeError(f"the template has no function for: {', '.join(sorted(missing))}")
    table = {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": gsi["IndexName"],
                "KeySchema": gsi["KeySchema"],
                "Projection": gsi.get("Projection", {"ProjectionType": "ALL"}),
            }
            for gsi in props.get("GlobalSecondaryIndexes", [])
        ],
    }
    source = f"synthesized stack {stack_name} ({apis[0]} API)"
    return Deployment(table, functions, source, api_type=apis[0])


def from_layout(functions: Mapping[str, Function], api_type: str = "rest") -> Deployment:
    """The table as ``statewright.aws.table_layout`` names it (no synth)."""
    from tests.integration.aws import tables

    table = {
        "KeySchema": tables.KEY_SCHEMA,
        "AttributeDefinitions": tables.ATTRIBUTE_DEFINITIONS,
        "GlobalSecondaryIndexes": tables.GLOBAL_SECONDARY_INDEXES,
    }
    return Deployment(
        table, functions, f"statewright.aws.table_layout (no synth, {api_type} API)", api_type
    )
