"""The executor registry: built-ins register like any other plugin, and a package adds
one through the ``statewright.executors`` entry-point group (an ExecutorPlugin object).

A plugin says what the linter needs (its config model, its rule id, the config fields
that may hold references) and how to build its executor in each mode: ``local`` for
``statewright serve``, ``aws`` for the dispatcher. A mode it leaves None has no
implementation there, and a spec naming it is refused when the specs load
(:func:`require_implementations`), never when a task starts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from statewright.errors import ConfigurationError

if TYPE_CHECKING:
    from statewright.ports import Bus, Executor
    from statewright.spec.models import Spec

ENTRY_POINT_GROUP = "statewright.executors"
# The timeout of a task whose executor is not registered (the linter refuses such a
# spec; a spec stored by an older deployment may still name one).
DEFAULT_TIMEOUT_SECONDS = 900

Mode = Literal["local", "aws"]


@dataclass(frozen=True)
class LocalContext:
    """What a local implementation is built from: the in-process bus it reports
    ``Task Finished`` to, the data dir (its own files go under it), the logs dir, and the
    options of ``statewright serve``."""

    bus: Bus
    data_dir: Path
    logs_dir: Path
    functions_dir: Path | None = None
    terraform_bin: str | None = None


@dataclass(frozen=True)
class AwsContext:
    """What an AWS implementation is built from: ``client(service)`` gives a boto3
    client (built once, on first use, with standard retries), ``bus_name`` the control
    plane's bus it reports ``Task Finished`` to (built with ``invocation.finished``, which
    carries the attempt's report token: docs/spec.md#executor-plugins), and the
    dispatcher's settings."""

    client: Callable[[str], Any]
    env_name: str
    bus_name: str
    settings: Any
    specs_dir: Path


@dataclass(frozen=True)
class ExecutorPlugin:
    """``config_model`` validates a task's ``config``; ``rule`` is the lint rule id its
    findings carry (``lambda-config`` for the lambda executor); ``reference_fields`` are
    the config fields whose strings may hold references (``${{ ... }}``), resolved when
    an attempt starts; ``local`` and ``aws`` build the executor in each mode (None: no
    implementation in that mode).

    ``state_key`` (optional) names the state a task's runs work on, from its validated
    config: on one machine, runs with the same key never overlap (a later one waits for
    the earlier run to end), and leaving a state lets such a run finish unless its task
    says ``cancel: force`` (docs/runtime.md, "One run per state file"). None: the
    executor's runs keep no state and are stopped when their state is left."""

    name: str
    config_model: type[BaseModel]
    default_timeout_seconds: int
    rule: str
    reference_fields: tuple[str, ...] = ()
    local: Callable[[LocalContext], Executor] | None = None
    aws: Callable[[AwsContext], Executor] | None = None
    state_key: Callable[[Any], str | None] | None = None

    def validate_config(self, config: dict[str, Any]) -> BaseModel:
        return self.config_model.model_validate(config)

    def modes(self) -> list[Mode]:
        """The modes it has an implementation in."""
        found: list[Mode] = []
        if self.local is not None:
            found.append("local")
        if self.aws is not None:
            found.append("aws")
        return found


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


def task_state_key(executor: str, config: dict[str, Any]) -> str | None:
    """The state key of a task's runs (see ExecutorPlugin.state_key), or None: the
    executor keeps no state, is not registered, or the config is not valid (a spec
    stored by an older deployment; its tasks then fail when they start)."""
    plugin = registry().get(executor)
    if plugin is None or plugin.state_key is None:
        return None
    try:
        return plugin.state_key(plugin.validate_config(config))
    except ValueError:  # pydantic's ValidationError is one
        return None


def local_executors(context: LocalContext) -> dict[str, Executor]:
    """An executor for every registered plugin with a local implementation."""
    return {
        name: plugin.local(context)
        for name, plugin in registry().items()
        if plugin.local is not None
    }


def aws_executors(context: AwsContext) -> dict[str, Executor]:
    """An executor for every registered plugin with an AWS implementation."""
    return {
        name: plugin.aws(context) for name, plugin in registry().items() if plugin.aws is not None
    }


def require_implementations(specs: Iterable[Spec], mode: Mode) -> None:
    """ConfigurationError naming every spec and executor that ``mode`` cannot run: a
    task whose executor has no implementation there (or is not registered at all)."""
    plugins = registry()
    problems: list[str] = []
    for spec in specs:
        for executor in sorted({task.executor for task in spec.tasks.values()}):
            plugin = plugins.get(executor)
            if plugin is None:
                problems.append(
                    f"spec {spec.name}: executor {executor!r} is not registered here "
                    "(install the package that provides it)"
                )
            elif mode not in plugin.modes():
                has = ", ".join(plugin.modes()) or "no mode"
                problems.append(
                    f"spec {spec.name}: executor {executor!r} has no {mode} implementation "
                    f"(its plugin provides: {has})"
                )
    if problems:
        raise ConfigurationError(
            f"these specs name executors that cannot run in {mode} mode:\n" + "\n".join(problems)
        )
