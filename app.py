"""CDK entry point: `cdk synth -c env=NAME` (default dev) -> stack statewright-NAME."""

from __future__ import annotations

import sys

import aws_cdk as cdk

from infra.app import DEFAULT_ENV, build_app, bytecode_warnings, spec_warnings
from infra.bundling import LayerBuildError
from infra.paths import MissingSourceError
from infra.settings import SettingsError
from infra.specs_check import SpecsError
from infra.terraform_runner import BuildspecError


def main() -> int:
    env_name = cdk.App().node.try_get_context("env") or DEFAULT_ENV
    try:
        app = build_app(str(env_name))
    except (SettingsError, SpecsError, MissingSourceError, BuildspecError, LayerBuildError) as exc:
        print(f"statewright: {exc}", file=sys.stderr)
        return 2
    for warning in [*bytecode_warnings(app), *spec_warnings(app)]:
        print(f"statewright: {warning}", file=sys.stderr)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
