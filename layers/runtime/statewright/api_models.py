"""Request and response bodies of the HTTP API (docs/api.md#routes), as pydantic models: they
validate what comes in and document, through OpenAPI, what goes out."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from statewright.model import MACHINE_ID_PATTERN, HistoryEntry, MachineStatus, TaskStatus

MachineId = Annotated[
    str,
    Field(
        pattern=MACHINE_ID_PATTERN,
        description="1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        examples=["preview-42"],
    ),
]
# The API refuses a NUL character in any string of a request (statewright.api.
# screen_request); the schemas say so, so no client takes such a string for valid.
NO_NUL_PATTERN = "^[^\\x00]*$"
SpecName = Annotated[
    str, Field(min_length=1, max_length=256, pattern=NO_NUL_PATTERN, examples=["demo"])
]
EventName = Annotated[
    str, Field(min_length=1, max_length=256, pattern=NO_NUL_PATTERN, examples=["LAUNCH"])
]
# A duration as people write it (statewright.durations): whole days, hours, minutes and
# seconds, largest first. The service parses it and names the field when it does not.
DURATION_PATTERN = "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
Ttl = Annotated[
    str,
    Field(
        max_length=64,
        # Documented, not enforced here: the service's refusal says what is accepted.
        json_schema_extra={"pattern": DURATION_PATTERN},
        description="a duration: whole days, hours, minutes and seconds, largest first "
        "(90s, 30m, 72h, 7d, 1d12h); at most the spec's lifecycle max_ttl",
        examples=["24h"],
    ),
]
MetadataValue = str | int | float | bool | None
# What OpenAPI shows of metadata: a flat object (the model itself takes any JSON, so a
# nested value answers invalid_metadata rather than invalid_request).
FLAT_OBJECT_SCHEMA: JsonDict = {
    "type": "object",
    "propertyNames": {"pattern": NO_NUL_PATTERN},
    "additionalProperties": {
        "anyOf": [
            {"type": "string", "pattern": NO_NUL_PATTERN},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
        ]
    },
}


# ---- requests -----------------------------------------------------------------------


class CreateMachineRequest(BaseModel):
    """POST /machines."""

    model_config = ConfigDict(extra="forbid")

    spec: SpecName
    id: MachineId | None = Field(default=None, description="generated when omitted")
    # Typed loosely on purpose: a non-flat value answers 400 invalid_metadata (the
    # engine's rule, with its message), not a generic invalid_request.
    metadata: Any = Field(
        default=None,
        description="a flat JSON object: string, number, boolean or null values",
        json_schema_extra=FLAT_OBJECT_SCHEMA,
    )
    ttl: Ttl | None = Field(
        default=None,
        description="how long the machine lives (only for a spec with a lifecycle; at most "
        "its max_ttl); the spec's ttl when omitted",
    )


class SendEventRequest(BaseModel):
    """POST /machines/{id}/events."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    metadata: Any = Field(
        default=None,
        description="merged into the machine's metadata: a flat JSON object",
        json_schema_extra=FLAT_OBJECT_SCHEMA,
    )
    spec: SpecName | None = Field(
        default=None,
        description="create the machine from this spec if it does not exist, then apply the event",
    )
    ttl: Ttl | None = Field(
        default=None,
        description="with spec: the ttl of the machine if this event creates it (as on "
        "POST /machines); ignored for a machine that exists",
    )


class SetTtlRequest(BaseModel):
    """POST /machines/{id}/ttl."""

    model_config = ConfigDict(extra="forbid")

    ttl: Ttl = Field(description="the machine's new ttl, counted from now; at most max_ttl")


# ---- responses ----------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(examples=["event_not_accepted"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class TaskOut(BaseModel):
    # Fields the model gains later pass through rather than vanish from answers.
    model_config = ConfigDict(extra="allow")

    executor: str
    status: TaskStatus
    attempt: int
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = Field(default=None, description="why the attempt failed, for a person")
    error_type: str | None = Field(
        default=None,
        description="the Lambda error's type, or the control plane's own: OutputTooLarge, "
        "Timeout, StartFailed, ReferenceError, DriftDetected",
    )
    output: Any = None
    redacted_outputs: list[str] = Field(
        default_factory=list,
        description="outputs withheld from output: Terraform outputs marked sensitive, by name",
    )
    state: str
    epoch: int
    waiting_for: list[str] | None = Field(
        default=None, description="on a pending task: the tasks of its state it still needs"
    )


class MachineOut(BaseModel):
    """The Machine JSON of docs/api.md#machine-json (statewright.model.Machine.public)."""

    model_config = ConfigDict(extra="allow")

    id: str
    spec: str
    spec_digest: str
    state: str
    previous_state: str | None = None
    status: MachineStatus
    epoch: int
    version: int
    tasks: dict[str, TaskOut]
    metadata: dict[str, MetadataValue]
    created_at: str
    updated_at: str
    halted: str | None = Field(
        default=None, description="why the engine stopped the machine (an endless NEXT loop)"
    )
    expires_at: str | None = Field(
        default=None,
        description="when the machine expires (its spec's lifecycle); null: it does not",
    )
    expired: bool = Field(
        default=False,
        description="expires_at has come and the expire event was sent; false again "
        "after POST /machines/{id}/ttl",
    )


class MachineList(BaseModel):
    machines: list[MachineOut]
    next_token: str | None = None


class HistoryPage(BaseModel):
    entries: list[HistoryEntry]
    next_token: str | None = None


class SpecSummary(BaseModel):
    name: str
    digest: str
    events: list[str]
    states: list[str]


class SpecList(BaseModel):
    specs: list[SpecSummary]


class SpecDocument(BaseModel):
    """The normalized spec, with its ``name`` and ``digest``."""

    model_config = ConfigDict(extra="allow")

    name: str
    digest: str
    version: str
    events: list[str]
    states: dict[str, Any]
    tasks: dict[str, Any] = Field(default_factory=dict)
