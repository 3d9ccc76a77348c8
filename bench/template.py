"""What the cost benchmark takes from the deployment itself: the table (key schema,
indexes and their projections) and each function's memory and architecture, read from
the template the CDK app synthesizes — so the benchmark prices what would be deployed.

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


@dataclass(frozen=True)
class Deployment:
    table: dict[str, Any]  # KeySchema, AttributeDefinitions, GlobalSecondaryIndexes
    functions: Mapping[str, Function]  # by role: dispatcher, task_runner
    source: str


def from_template() -> Deployment:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app

    with tempfile.TemporaryDirectory(prefix="statewright-bench-synth-") as outdir:
        assembly = build_app(TEMPLATE_ENV, outdir=outdir).synth()
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
    return Deployment(table, functions, f"synthesized stack {stack_name}")


def from_layout(functions: Mapping[str, Function]) -> Deployment:
    """The table as ``statewright.aws.table_layout`` names it (no synth)."""
    from tests.integration.aws import tables

    table = {
        "KeySchema": tables.KEY_SCHEMA,
        "AttributeDefinitions": tables.ATTRIBUTE_DEFINITIONS,
        "GlobalSecondaryIndexes": tables.GLOBAL_SECONDARY_INDEXES,
    }
    return Deployment(table, functions, "statewright.aws.table_layout (no synth)")
