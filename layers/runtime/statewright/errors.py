"""Domain exceptions. Each carries a stable ``code``; api.py maps codes to HTTP statuses
in one place. Messages are written for a person: they name the problem and what would be
accepted instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statewright.model import Machine


class StatewrightError(Exception):
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(StatewrightError):
    code = "invalid_request"


class InvalidMetadata(StatewrightError):
    code = "invalid_metadata"


class PayloadTooLarge(StatewrightError):
    code = "payload_too_large"


class MetadataTooLarge(StatewrightError):
    """A machine's metadata, after an event's is merged in, is over its limit."""

    code = "metadata_too_large"


class ReservedEvent(StatewrightError):
    code = "reserved_event"


class UnknownEvent(StatewrightError):
    code = "unknown_event"


class UnknownSpec(StatewrightError):
    code = "unknown_spec"


class SpecNotFound(StatewrightError):
    """GET /specs/{name} for a name that is not loaded."""

    code = "spec_not_found"


class MachineNotFound(StatewrightError):
    code = "machine_not_found"

    @classmethod
    def of(cls, machine_id: str) -> MachineNotFound:
        """The one answer for a missing machine: a machine hidden from a caller by the
        access rules gets exactly this too (docs/security.md, "Access rules")."""
        return cls(f"machine {machine_id} does not exist")


class Forbidden(StatewrightError):
    """No access rule allows the caller this action on this target."""

    code = "forbidden"


class MachineExists(StatewrightError):
    code = "machine_exists"


class EventNotAccepted(StatewrightError):
    code = "event_not_accepted"


class NothingToRetry(StatewrightError):
    code = "nothing_to_retry"


class IdempotencyKeyReused(StatewrightError):
    """The same Idempotency-Key was sent with a different request."""

    code = "idempotency_key_reused"


class Conflict(StatewrightError):
    """Optimistic-concurrency retries ran out of time (answers 503 with Retry-After)."""

    code = "conflict"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    @classmethod
    def too_fast(cls, machine_id: str, doing: str) -> Conflict:
        """Writers of ``machine_id`` kept winning until the deadline."""
        return cls(f"machine {machine_id} is changing too fast to {doing}; retry after a second")


class VersionConflict(Exception):
    """Raised by a store when a conditional write finds another version (or no item).

    ``current`` is the item as stored when the store could read it for free
    (DynamoDB's ReturnValuesOnConditionCheckFailure=ALL_OLD), else None and the caller
    re-reads. Not a StatewrightError: the service retries it and never shows it."""

    def __init__(self, machine_id: str, current: Machine | None = None) -> None:
        super().__init__(f"machine {machine_id} changed underneath this write")
        self.machine_id = machine_id
        self.current = current


class ItemTooLarge(Exception):
    """A store could not write a machine because it is larger than the store takes
    (DynamoDB's 400 KB item). The engine's limits keep machines well below that; the
    service turns this backstop into ``metadata_too_large`` or an ``OutputTooLarge``
    task failure. Nothing was written."""

    def __init__(self, machine_id: str, size: int, limit: int) -> None:
        super().__init__(
            f"machine {machine_id} would take {size} bytes in the store, over its "
            f"{limit}-byte limit"
        )
        self.machine_id = machine_id
        self.size = size
        self.limit = limit


class ConfigurationError(Exception):
    """A deployment or local setup is missing something (env var, binary, folder)."""


class StartDeferred(Exception):
    """An executor could not start an attempt for a reason that passes (throttling, a
    service error, a network fault). The attempt stays ``pending`` and the reconciler
    starts it again; the request or event that entered the state still succeeds, since
    its write is done and a retry of it would be a duplicate."""
