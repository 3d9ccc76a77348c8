"""The executor registry: built-ins register like any other plugin, and a package adds
one through the ``statewright.executors`` entry-point group (an ExecutorPlugin object)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

ENTRY_POINT_GROUP = "statewright.executors"
# The timeout of a task whose executor is not registered (the linter refuses such a
# spec; a spec stored by an older deployment may still name one).
DEFAULT_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class ExecutorPlugin:
    """``config_model`` validates a task's ``config``; ``rule`` is the lint rule id its
    findings carry (``lambda-config`` for the lambda executor); ``reference_fields`` are
    the config fields whose strings may hold references (``${{ ... }}``), resolved when
    an attempt starts."""

    name: str
    config_model: type[BaseModel]
    default_timeout_seconds: int
    rule: str
    reference_fields: tuple[str, ...] = ()

    def validate_config(self, config: dict[str, Any]) -> BaseModel:
        return self.config_model.model_validate(config)


@functools.cache
def registry() -> dict[str, ExecutorPlugin]:
    """Every registered executor by name; the built-ins are always there, even when the
    package is imported from a Lambda layer without its distribution metadata."""
    from statewright.executors.builtin import LAMBDA, TERRAFORM

    plugins = {LAMBDA.name: LAMBDA, TERRAFORM.name: TERRAFORM}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()
        if isinstance(plugin, ExecutorPlugin):
            plugins.setdefault(plugin.name, plugin)
    return plugins


def default_timeout_seconds(executor: str) -> int:
    """The timeout of a task of ``executor`` that sets none."""
    plugin = registry().get(executor)
    return plugin.default_timeout_seconds if plugin else DEFAULT_TIMEOUT_SECONDS
