"""Build the CDK app for one environment, in-process (tests synthesize with this too)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk

from infra.nag import enable_nag
from infra.paths import REPO_ROOT, SourcePaths
from infra.settings import CONTEXT_KEY, SettingsError, load_settings
from infra.specs_check import check_specs
from infra.stack import StatewrightStack

DEFAULT_ENV = "dev"
CDK_JSON = REPO_ROOT / "cdk.json"


def repository_context() -> dict[str, Any]:
    """cdk.json's context, for apps built outside the CDK CLI (which passes it itself)."""
    try:
        document = json.loads(CDK_JSON.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"{CDK_JSON} not found; it declares the environments") from exc
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{CDK_JSON} is not valid JSON: {exc}") from exc
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise SettingsError(f"{CDK_JSON}: 'context' must be an object")
    return context


def build_stack(
    app: cdk.App, env_name: str, *, paths: SourcePaths | None = None
) -> StatewrightStack:
    """Add the ``statewright-<env_name>`` stack to app, configured from app's context."""
    settings = load_settings(app.node.try_get_context(CONTEXT_KEY), env_name)
    paths = paths or SourcePaths()
    check_specs(paths.specs)
    return StatewrightStack(app, env_name=env_name, settings=settings, paths=paths)


def bytecode_warnings(app: cdk.App) -> list[str]:
    """A line per stack whose layer ships sources only (no Python 3.13 on this machine)."""
    return [
        f"warning: {stack.stack_name}: no python3.13 on this machine, so the layer ships no "
        "bytecode and every cold start compiles it (docs/benchmarks.md); install "
        "Python 3.13 and synth again (docs/deploy.md)"
        for stack in app.node.children
        if isinstance(stack, StatewrightStack) and stack.layer_bytecode is None
    ]


def spec_warnings(app: cdk.App) -> list[str]:
    """One line per task of a shipped spec that the app's deployment cannot run."""
    return [
        f"warning: {stack.stack_name}: {problem}"
        for stack in app.node.children
        if isinstance(stack, StatewrightStack)
        for problem in stack.spec_problems
    ]


def build_app(
    env_name: str,
    *,
    outdir: str | None = None,
    context: Mapping[str, Any] | None = None,
    paths: SourcePaths | None = None,
) -> cdk.App:
    """An app holding the one stack of env_name, with cdk-nag's AwsSolutions checks as a
    validation plugin (``app.synth()`` fails on any unacknowledged finding).

    Without ``context``, cdk.json's is used unless the CDK CLI already passed it.
    """
    app = cdk.App(outdir=outdir, context=dict(context) if context is not None else None)
    if context is None and app.node.try_get_context(CONTEXT_KEY) is None:
        for key, value in repository_context().items():
            app.node.set_context(key, value)
    enable_nag(app)
    build_stack(app, env_name, paths=paths)
    return app
