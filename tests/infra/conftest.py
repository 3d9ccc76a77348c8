"""Each environment of cdk.json is synthesized once per session (a synth takes seconds),
in-process, into a temporary cloud assembly the tests read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import assertions

from infra.app import build_app, repository_context
from infra.settings import CONTEXT_KEY, EnvironmentSettings, load_settings

ENVIRONMENTS = ("dev", "prod")
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def cfn_lint_findings(template_path: Path) -> str:
    """What cfn-lint finds in a template: nothing (``""``) when it is clean."""
    result = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", str(template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def acknowledged_rules(metadata_path: Path) -> dict[str, str]:
    """The cdk-nag findings a synth accepted (rule id -> written reason), from the cloud
    assembly's construct metadata."""
    metadata = json.loads(metadata_path.read_text())
    return {
        rule_id: reason
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule_id, reason in entry["data"].items()
    }


@dataclass
class Synthesized:
    env: str
    settings: EnvironmentSettings
    outdir: Path
    template_path: Path
    raw: dict[str, Any]
    template: assertions.Template
    app: cdk.App

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.raw["Resources"]
        return resources

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def one(self, cfn_type: str, prefix: str = "") -> tuple[str, dict[str, Any]]:
        found = [(k, v) for k, v in self.of_type(cfn_type).items() if k.startswith(prefix)]
        assert len(found) == 1, f"expected one {cfn_type} starting {prefix!r}, got {found}"
        return found[0]

    def asset_dir(self, s3_key: str) -> Path:
        """The staged directory of the asset deployed under this S3 key."""
        manifest = json.loads((self.outdir / f"statewright-{self.env}.assets.json").read_text())
        source = manifest["files"][s3_key.removesuffix(".zip")]["source"]
        assert source["packaging"] == "zip", source
        return self.outdir / str(source["path"])

    def function(self, name: str) -> dict[str, Any]:
        """Properties of the control plane's function statewright-<env>-<name>."""
        found: list[dict[str, Any]] = [
            r["Properties"]
            for r in self.of_type("AWS::Lambda::Function").values()
            if r["Properties"].get("FunctionName") == f"statewright-{self.env}-{name}"
        ]
        assert len(found) == 1, f"no single function statewright-{self.env}-{name}"
        return found[0]


def own_arn(service: str, resource: str) -> dict[str, Any]:
    """How the template spells an ARN of this stack's account and region, e.g.
    ``own_arn("cloudwatch", "alarm:*")``."""
    parts = ["arn:", {"Ref": "AWS::Partition"}, f":{service}:", {"Ref": "AWS::Region"}]
    return {"Fn::Join": ["", [*parts, ":", {"Ref": "AWS::AccountId"}, f":{resource}"]]}


def api_invoke_permissions(synth: Synthesized) -> list[dict[str, Any]]:
    """The Lambda permissions that let API Gateway invoke a function."""
    return [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]


def synthesize(env: str, outdir: Path, context: dict[str, Any] | None = None) -> Synthesized:
    """The stack of ``env`` from cdk.json's context, or from ``context`` when given."""
    app = build_app(env, outdir=str(outdir), context=context)
    app.synth()
    path = outdir / f"statewright-{env}.template.json"
    raw = json.loads(path.read_text())
    settings = load_settings((context or repository_context())[CONTEXT_KEY], env)
    return Synthesized(env, settings, outdir, path, raw, assertions.Template.from_json(raw), app)


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def synth(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synthesized]:
    env: str = request.param
    yield synthesize(env, tmp_path_factory.mktemp(f"cdk-{env}"))
