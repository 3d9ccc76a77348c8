"""The specs a deployment ships, checked before anything is synthesized: each must lint
clean, and each executor it names must have an AWS implementation (a plugin may provide
only a local one). A spec that the dispatcher would refuse at load never deploys."""

from __future__ import annotations

from pathlib import Path

from statewright.catalog import SpecCatalog
from statewright.errors import ConfigurationError
from statewright.executors.registry import require_implementations


class SpecsError(Exception):
    """The bundled specs cannot run on AWS; the message names each spec and problem."""


def check_specs(folder: Path) -> None:
    try:
        require_implementations(SpecCatalog.from_folders([folder]).specs(), "aws")
    except ConfigurationError as exc:
        raise SpecsError(f"{folder}: {exc}") from exc
