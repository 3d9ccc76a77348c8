"""The normalized Machine 1.0 spec, the shape the engine runs and the API shows.

These models describe a spec that already passed the linter (statewright.spec.lint);
raw YAML with line numbers is the loader's business, not theirs."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from statewright.durations import Duration
from statewright.executors.registry import default_timeout_seconds, task_state_key
from statewright.spec.rules import (
    DEFAULT_TIMEZONE,
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    MIN_ATTEMPTS,
    MIN_TIMEOUT_SECONDS,
    SCHEDULE_NAME_PATTERN,
    SPEC_VERSION,
)

__all__ = [
    "SPEC_VERSION",
    "Action",
    "Lifecycle",
    "RetryPolicy",
    "Schedule",
    "Spec",
    "StateSpec",
    "TaskSpec",
]


class RetryPolicy(BaseModel):
    """Extension: ``attempts`` counts every attempt, the first included."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=1, ge=MIN_ATTEMPTS, le=MAX_ATTEMPTS)
    backoff_seconds: float = Field(default=0, ge=0, le=MAX_BACKOFF_SECONDS)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2, 3, ...): the wait doubles each time."""
        if attempt <= 1:
            return 0.0
        return float(self.backoff_seconds * (2 ** (attempt - 2)))


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executor: str
    config: dict[str, Any] = Field(default_factory=dict)
    # None rather than an empty list, so a spec without needs keeps its digest.
    needs: list[str] | None = None
    retry: RetryPolicy | None = None
    timeout_seconds: int | None = Field(default=None, ge=MIN_TIMEOUT_SECONDS)
    # None (graceful) rather than the default's name, so a spec without it keeps its digest.
    cancel: Literal["graceful", "force"] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _resolve_executor_facts(self) -> TaskSpec:
        """``timeout`` and ``state_key`` are resolved when the spec is built, so the
        engine never consults the executor registry while it decides (they are not
        part of the normalized document, nor of its digest)."""
        _ = self.timeout, self.state_key
        return self

    @property
    def attempts(self) -> int:
        return self.retry.attempts if self.retry else 1

    # cached_property rather than PrivateAttr: after the first look-up (in the validator
    # above) it is a plain instance attribute, where a private attribute goes through
    # BaseModel.__getattr__ after a failed look-up (an AttributeError raised and caught,
    # several times a task's decision).
    @functools.cached_property
    def timeout(self) -> int:
        """``timeout_seconds``, else the executor's default."""
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        return default_timeout_seconds(self.executor)

    @functools.cached_property
    def state_key(self) -> str | None:
        """The state its runs work on (a Terraform source's state file), or None: on one
        machine, runs with the same key never overlap (docs/runtime.md)."""
        return task_state_key(self.executor, self.config)

    @property
    def forced(self) -> bool:
        """Whether leaving its state stops a run that keeps state (``cancel: force``)."""
        return self.cancel == "force"


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["advance", "no-op"]
    state: str | None = None


class StateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    terminal: bool = False
    tasks: list[str] = Field(default_factory=list)
    on: dict[str, list[Action]] = Field(default_factory=dict)
    description: str | None = None


class Lifecycle(BaseModel):
    """Extension: a machine's time to live (docs/spec.md#lifecycle). Durations are whole
    seconds here and canonical text (``3d``) in the JSON document."""

    model_config = ConfigDict(extra="forbid")

    ttl: Duration
    # The most a create or an extension may ask for; the normalized spec always has it.
    max_ttl: Duration
    expire_event: str
    # Offsets before expiry at which a `Machine Expiring` notice goes out, largest first.
    warn_before: list[Duration] = Field(default_factory=list)
    extend_on: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _max_ttl_defaults_to_ttl(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_ttl") is None and "ttl" in data:
            return {**data, "max_ttl": data["ttl"]}
        return data

    @model_validator(mode="after")
    def _ttl_within_max(self) -> Lifecycle:
        if self.ttl > self.max_ttl:
            raise ValueError("ttl is longer than max_ttl")
        self.warn_before = sorted(set(self.warn_before), reverse=True)
        return self


class Schedule(BaseModel):
    """Extension: send ``event`` to the spec's machines at each fire time of ``cron``
    (five fields, in ``timezone``), to those in ``states`` when given
    (docs/spec.md#schedules). ``cron`` is stored normalized (statewright.cron)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SCHEDULE_NAME_PATTERN)
    cron: str
    timezone: str = DEFAULT_TIMEZONE
    event: str
    states: list[str] | None = None

    def applies_in(self, state: str) -> bool:
        """Whether a machine in ``state`` is one the schedule is for (its state must
        still handle the event)."""
        return self.states is None or state in self.states


class Spec(BaseModel):
    """A normalized spec. ``name`` is the file name without .yml/.yaml; ``base_dir`` is
    the spec file's folder (relative terraform ``local`` locations resolve against it)
    and is not part of the digest, so moving the specs folder changes no machine."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = SPEC_VERSION
    events: list[str]
    states: dict[str, StateSpec]
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)
    # None when absent, so a spec without them keeps its digest.
    lifecycle: Lifecycle | None = None
    schedules: list[Schedule] | None = None
    base_dir: str | None = None

    def document(self) -> dict[str, Any]:
        """The normalized spec as JSON-ready data, without ``base_dir``."""
        return self.model_dump(mode="json", exclude={"base_dir"}, exclude_none=True)

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the canonical JSON of :meth:`document` (stable across runs)."""
        canonical = json.dumps(self.document(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules or [] if s.name == name), None)

    def handler(self, state: str, event: str) -> list[Action] | None:
        """The actions ``state`` runs for ``event``, or None when it has no handler."""
        return self.states[state].on.get(event)

    def accepted_events(self, state: str) -> list[str]:
        return list(self.states[state].on)

    def needs_in_state(self, state: str, task: str) -> list[str]:
        """The tasks ``task`` waits for in ``state``: its needs that the state runs too
        (needs outside the state are ignored)."""
        listed = self.states[state].tasks
        return [n for n in self.tasks[task].needs or [] if n in listed and n != task]

    def task_order(self, state: str) -> list[list[str]]:
        """The state's tasks in waves: the first starts on entry, each next one when
        every task it needs is done (the linter refuses cycles, so all are placed)."""
        remaining = list(self.states[state].tasks)
        placed: set[str] = set()
        waves: list[list[str]] = []
        while remaining:
            wave = [t for t in remaining if set(self.needs_in_state(state, t)) <= placed]
            if not wave:  # a cycle (only in a spec the linter refused): show the rest
                wave = remaining
            waves.append(wave)
            placed.update(wave)
            remaining = [t for t in remaining if t not in placed]
        return waves
