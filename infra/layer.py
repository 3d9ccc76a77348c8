"""The runtime layer: pinned third-party wheels for arm64 + the statewright package."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import (
    LayerBundler,
    as_local_bundling,
    ensure_layer_dependencies,
    layer_asset_hash,
)
from infra.paths import SourcePaths

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


class RuntimeLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, paths: SourcePaths) -> None:
        super().__init__(scope, construct_id)
        # Fetched (or found in the cache) here rather than inside CDK's bundling callback,
        # so a pip failure surfaces as itself instead of wrapped in a jsii error.
        ensure_layer_dependencies(paths)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(
                str(paths.layer),
                # The hash covers exactly what goes in (requirements.txt and the package),
                # so an unchanged layer is neither rebuilt nor republished.
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=layer_asset_hash(paths),
                bundling=cdk.BundlingOptions(
                    image=RUNTIME.bundling_image, local=as_local_bundling(LayerBundler(paths))
                ),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Statewright runtime: the statewright package and its pinned dependencies",
        )
