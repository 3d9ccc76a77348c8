"""The runtime layer: pinned third-party wheels for arm64 + the statewright package."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import (
    LayerBundler,
    as_local_bundling,
    bytecode_tag,
    compiled_layer_dependencies,
    ensure_layer_dependencies,
    layer_asset_hash,
    runtime_python,
)
from infra.paths import SourcePaths

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


class RuntimeLayer(Construct):
    """``bytecode`` is the tag of the bytecode the layer ships (``cpython-313``), or None
    when this machine has no Python of the runtime's version to compile it: then every
    cold start compiles the layer's modules (docs/deploy.md says how to avoid it)."""

    def __init__(self, scope: Construct, construct_id: str, *, paths: SourcePaths) -> None:
        super().__init__(scope, construct_id)
        python = runtime_python()
        self.bytecode = bytecode_tag(python) if python is not None else None
        # Fetched (or found in the cache) here rather than inside CDK's bundling callback,
        # so a pip failure surfaces as itself instead of wrapped in a jsii error.
        if python is None:
            ensure_layer_dependencies(paths)
        else:
            compiled_layer_dependencies(paths, python)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(paths.layer),
                # The hash covers exactly what goes in (requirements.txt and the package),
                # so an unchanged layer is neither rebuilt nor republished.
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=layer_asset_hash(paths, bytecode=self.bytecode),
                bundling=cdk.BundlingOptions(
                    image=RUNTIME.bundling_image,
                    local=as_local_bundling(LayerBundler(paths, python=python)),
                ),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Statewright runtime: the statewright package and its pinned dependencies",
        )
