"""The aggregate (Machine), the messages that move it and the invocation that starts a
task, with the validation of the ids and metadata callers send.

What the engine builds on every decision — the machine, its task records and held runs,
history entries, bus events — are plain dataclasses (statewright.rows says why); pydantic
validates them where they are loaded (stores) and dumps them where they leave. Messages
from outside (a task's report, a machine event) and task invocations stay pydantic
models: they are checked as they come in."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from statewright.errors import InvalidMetadata, InvalidRequest
from statewright.rows import Row
from statewright.spec import rules
from statewright.spec.models import TaskSpec

MetadataValue = str | int | float | bool | None
Metadata = dict[str, MetadataValue]

TaskStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
MachineStatus = Literal["running", "waiting", "failed"]
SystemEvent = Literal["NEXT", "FAILED"]
SYSTEM_EVENTS: frozenset[str] = frozenset(rules.SYSTEM_EVENTS)

MACHINE_ID_PATTERN = rules.MACHINE_ID_PATTERN
# NUL, or half of a UTF-16 surrogate pair: JSON can spell both ("\u0000", "\ud800"), but
# no store, log or task should see them (a lone surrogate cannot even be encoded as UTF-8).
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
EVENT_SOURCE = "statewright"
# How machines stored by earlier versions marked applied system events in ``published``.
_OLD_APPLIED_PREFIX = "applied:"
_MACHINE_ID = re.compile(MACHINE_ID_PATTERN)
# Terraform variables the control plane sets itself: ``stack_id`` (the machine id) and
# any name starting ``statewright_`` (kept for the control plane). No metadata key and
# no task variable may take one of these names (docs/runtime.md, "Metadata").
STACK_ID_VARIABLE = "stack_id"
RESERVED_VARIABLE_PREFIX = "statewright_"


def is_reserved_variable(name: str) -> bool:
    """Whether ``name`` is a Terraform variable only the control plane may set."""
    return name == STACK_ID_VARIABLE or name.startswith(RESERVED_VARIABLE_PREFIX)


# ``error_type`` of a task failure the control plane itself decided (a Lambda function's
# failure carries the function's own error type instead).
OUTPUT_TOO_LARGE = "OutputTooLarge"
TIMEOUT = "Timeout"
START_FAILED = "StartFailed"
REFERENCE_ERROR = "ReferenceError"
DRIFT_DETECTED = "DriftDetected"


def now_iso() -> str:
    """UTC timestamp with millisecond precision, the one format stored everywhere."""
    return format_time(datetime.now(UTC))


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def format_time(value: datetime) -> str:
    """``value`` in the one format stored everywhere (UTC, milliseconds, ``Z``)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(kw_only=True)
class TaskRecord(Row):
    """The latest run of one task of a machine (public fields first, then internal)."""

    executor: str
    status: TaskStatus = "pending"
    attempt: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    # What kind of failure: the Lambda error's type (``ValueError``) or one of the control
    # plane's own (``OutputTooLarge``, ``Timeout``, ``StartFailed``...); None on success.
    error_type: str | None = None
    output: Any = None
    # Names of outputs withheld from ``output`` (Terraform outputs marked sensitive):
    # their values are never stored, published or returned.
    redacted_outputs: list[str] = field(default_factory=list)
    state: str
    epoch: int
    # Tasks of the state this pending task still waits for (its `needs`); None once it
    # may start.
    waiting_for: list[str] | None = None
    # Internal: executor handle (CodeBuild build id, local run id) used to cancel and to
    # match CodeBuild's own events; never shown in the API.
    run_id: str | None = None
    # Internal: earliest time this pending attempt may start (its retry backoff); an
    # ATTEMPT timer is armed for it.
    not_before: str | None = None
    # Internal: when this running attempt times out (started_at + the task's timeout);
    # a TIMEOUT timer is armed for it.
    deadline: str | None = None

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude={"run_id", "not_before", "deadline"})


@dataclass(kw_only=True)
class StateRun(Row):
    """A run holding one of the machine's states (a Terraform source's state file) from
    the moment its start is asked for until it ends, whether or not its own state was
    left meanwhile: the next run on that state waits for it (docs/runtime.md, "One run
    per state file"). Internal, never shown in the API."""

    task: str
    state: str
    epoch: int
    attempt: int
    # The executor's handle, once its start reported (to stop it: cancel: force, timeout).
    run_id: str | None = None
    since: str

    def is_attempt(self, task: str, epoch: int, attempt: int) -> bool:
        return (self.task, self.epoch, self.attempt) == (task, epoch, attempt)


# Fields of a stored machine that the API never shows (docs/runtime.md, "Internal fields").
_INTERNAL_MACHINE_FIELDS = frozenset(
    {
        "published",
        "applied",
        "history_seq",
        "idle_next",
        "state_runs",
        "schedule_fires",
        "ttl_seconds",
        "expire_pending",
        "warned",
    }
)


@dataclass(kw_only=True)
class Machine(Row):
    """A running instance of a spec. ``version`` is the optimistic-concurrency counter:
    every successful write stores version + 1 on condition that version still matches."""

    id: str
    spec: str
    spec_digest: str
    state: str
    previous_state: str | None = None
    status: MachineStatus = "running"
    epoch: int = 1
    version: int = 0
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    metadata: Metadata = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    # Why the engine stopped the machine (an endless NEXT loop), or None.
    halted: str | None = None
    # When the machine expires (docs/runtime.md, "TTL"); None for a spec without lifecycle.
    expires_at: str | None = None
    # True once expires_at has come (its expire event was sent), until a new ttl is set.
    expired: bool = False
    # Internal: the machine's ttl in seconds (the create's, else the spec's; POST /ttl
    # sets it); an extend_on event moves expires_at to now + this.
    ttl_seconds: int | None = None
    # Internal: the expire event was sent and no state has accepted it yet: it is sent
    # again on each state entry until one does.
    expire_pending: bool = False
    # Internal: the warn_before offsets (seconds) already warned of for this expires_at.
    warned: list[int] = field(default_factory=list)
    # Internal, by system event: the epoch whose NEXT/FAILED has been published, so a
    # satisfied state publishes once per epoch (the reconciler re-publishes when it was
    # lost) ...
    published: dict[str, int] = field(default_factory=dict)
    # ... and the epoch whose NEXT/FAILED has been applied (a no-op handler leaves the
    # epoch unchanged, so a repeated delivery must still be recognised).
    applied: dict[str, int] = field(default_factory=dict)
    # Internal: history entries written so far (sequence of the next one is this + 1).
    history_seq: int = 0
    # Internal: NEXT transitions in a row with no task run and no external event between
    # them; the engine halts the machine when it reaches MAX_IDLE_NEXT_TRANSITIONS.
    idle_next: int = 0
    # Internal, by state key (a Terraform source's digest): the run still using that
    # state, so the next one waits. At most one entry per source the spec names.
    state_runs: dict[str, StateRun] = field(default_factory=dict)
    # Internal: by spec schedule, the latest fire whose event reached this machine, so a
    # fire delivered twice is applied once (docs/runtime.md#schedules).
    schedule_fires: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def row_upgrade(data: Any) -> Any:
        """Machines stored before ``applied`` was a field of its own kept it in
        ``published``, under ``applied:NEXT`` and ``applied:FAILED``."""
        if not isinstance(data, dict) or not isinstance(data.get("published"), dict):
            return data
        published = data["published"]
        old = {k: v for k, v in published.items() if k.startswith(_OLD_APPLIED_PREFIX)}
        if not old:
            return data
        applied = {k.removeprefix(_OLD_APPLIED_PREFIX): v for k, v in old.items()}
        return {
            **data,
            "published": {k: v for k, v in published.items() if k not in old},
            "applied": {**applied, **data.get("applied", {})},
        }

    def public(self) -> dict[str, Any]:
        """The Machine JSON of docs/api.md#machine-json."""
        data = self.model_dump(exclude={*_INTERNAL_MACHINE_FIELDS, "tasks"})
        data["tasks"] = {name: rec.public() for name, rec in self.tasks.items()}
        return data

    def current_tasks(self) -> dict[str, TaskRecord]:
        return {n: t for n, t in self.tasks.items() if t.epoch == self.epoch}


@dataclass(kw_only=True)
class HistoryEntry(Row):
    """One line of GET /machines/{id}/history. ``kind`` is one of: event (an accepted
    event), transition, task_started, task_finished, task_cancelled, created, deleted,
    halted (the engine stopped an endless NEXT loop; ``error`` says why), run_finished (a
    run that outlived its attempt ended: a Terraform run of a state left, or one stopped;
    ``epoch`` and ``state`` are the run's), ttl_changed, expiring and expired
    (docs/runtime.md, "TTL"; ``expires_at`` says when)."""

    seq: int
    at: str = field(default_factory=now_iso)
    kind: str
    epoch: int
    state: str
    event: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    task: str | None = None
    attempt: int | None = None
    status: str | None = None
    error: str | None = None
    error_type: str | None = None
    source: str | None = None
    # Who caused the entry: the API caller, bus:<source>, or statewright (docs/api.md).
    actor: str | None = None
    # ttl_changed, expiring, expired: the machine's expires_at then.
    expires_at: str | None = None


# ---- validation of what a caller sends ---------------------------------------------


def validate_machine_id(machine_id: str) -> str:
    if not isinstance(machine_id, str) or not _MACHINE_ID.match(machine_id):
        raise InvalidRequest(
            f"machine id {machine_id!r} is not valid: use 1 to 128 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return machine_id


def validate_metadata(metadata: Any) -> Metadata:
    """A flat JSON object of strings, numbers, booleans and nulls (CloudSeam's rule)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata(
            f"metadata must be a JSON object of flat values, got {_json_type(metadata)}"
        )
    clean: Metadata = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise InvalidMetadata(f"metadata keys must be strings, got {key!r}")
        if is_reserved_variable(key):
            # Metadata becomes Terraform variables; these the control plane sets itself
            # (a machine naming another machine's resources through stack_id, say).
            raise InvalidMetadata(
                f"metadata key {key!r} is reserved: Statewright sets the Terraform variable "
                "stack_id (the machine id) and keeps every name starting with statewright_ "
                "for itself; rename the key"
            )
        for text, where in ((key, "a metadata key"), (value, f"metadata.{key!r}")):
            if isinstance(text, str) and BAD_TEXT.search(text):
                # The API screens HTTP bodies for these; bus events come here directly.
                raise InvalidMetadata(
                    f"{where} holds a NUL or half of a UTF-16 surrogate pair; metadata "
                    "strings must be valid Unicode without NUL"
                )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidMetadata(f"metadata.{key} must be a finite number, got {value}")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidMetadata(
                f"metadata.{key} is {_json_type(value)}; metadata values must be a "
                "string, number, boolean or null (nested values are not allowed)"
            )
        clean[key] = value
    return clean


def _json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


# ---- task invocations (what an executor is asked to start) ------------------------


class SucceededRun(BaseModel):
    """Which attempt of a task succeeded last: its epoch and attempt number."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    attempt: int


class TaskInvocation(BaseModel):
    """Everything an executor needs to start one attempt of one task."""

    machine_id: str
    spec: str
    spec_digest: str
    state: str
    task: str
    task_spec: TaskSpec
    epoch: int
    attempt: int
    metadata: Metadata = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # Beside ``outputs``: which run of each succeeded task they came from (an apply of a
    # saved plan applies exactly the plan that run made).
    succeeded: dict[str, SucceededRun] = field(default_factory=dict)
    base_dir: str | None = None
    timeout_seconds: int
    # The machine's created_at. A machine deleted and created again under the same id
    # runs the same epochs, tasks and attempts as the one before; this tells them apart.
    incarnation: str = ""
    # On AWS, the attempt's report token (statewright.report_tokens): the attempt's
    # Task Finished must carry it back, or the dispatcher refuses it. Empty locally.
    report_token: str = Field(default="", repr=False)

    @property
    def run_key(self) -> str:
        """Names the attempt: ``<machine>:<epoch>:<task>:<attempt>``."""
        return f"{self.machine_id}:{self.epoch}:{self.task}:{self.attempt}"

    @property
    def start_key(self) -> str:
        """Stable per attempt of one incarnation of the machine: repeated starts of one
        attempt are recognised by it (CodeBuild's idempotency token, the local
        executor's run table), and an attempt of a machine created again under the same
        id is not mistaken for one of its predecessor's."""
        return f"{self.run_key}@{self.incarnation}" if self.incarnation else self.run_key

    def finished(self, status: Literal["succeeded", "failed"], **fields: Any) -> TaskFinishedDetail:
        """This attempt's ``Task Finished`` report: its identity, its report token and
        ``status`` with ``fields`` (output, error, error_type, redacted_outputs). Every
        executor reports with it, plugins included (docs/spec.md#executor-plugins)."""
        return TaskFinishedDetail(
            machine_id=self.machine_id,
            epoch=self.epoch,
            task=self.task,
            attempt=self.attempt,
            status=status,
            report_token=self.report_token,
            **fields,
        )


# ---- bus messages (docs/aws.md#event-flows) ------------------------------------------

DetailType = Literal[
    "Machine Event", "Task Finished", "Machine State Changed", "Machine Deleted", "Machine Expiring"
]


class MachineEventDetail(BaseModel):
    """detail of ``Machine Event``: external (users' rules) or internal NEXT/FAILED."""

    model_config = ConfigDict(extra="ignore")

    machine_id: str
    event: str
    metadata: Metadata | None = None
    spec: str | None = None
    epoch: int | None = None
    # Internal: why the control plane sends the event (``expiry``); see service.
    reason: str | None = None


class TaskFinishedDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    machine_id: str
    epoch: int
    task: str
    attempt: int
    status: Literal["succeeded", "failed"]
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    # Outputs withheld from ``output`` (sensitive Terraform outputs), by name.
    redacted_outputs: list[str] = field(default_factory=list)
    # The attempt's report token, as its invocation carried it (statewright.report_tokens).
    report_token: str = Field(default="", repr=False)


class MachineStateChangedDetail(BaseModel):
    machine_id: str
    spec: str
    to: str
    epoch: int
    from_: str | None = Field(default=None, alias="from")

    model_config = ConfigDict(populate_by_name=True)


class MachineDeletedDetail(BaseModel):
    machine_id: str
    spec: str
    state: str
    epoch: int


@dataclass(frozen=True, kw_only=True)
class BusEvent:
    """What a Bus publishes: EventBridge's Source, DetailType and Detail. Made by the
    control plane itself, never loaded from outside, so never validated."""

    source: str = EVENT_SOURCE
    detail_type: DetailType
    detail: dict[str, Any]
