"""When the reconciler should next look at a machine: the key of the stores' sparse
"due" index (docs/architecture.md#the-store-contract).

A machine has reconciler work while a task of its current state is ``pending`` or
``running``, or while a ``NEXT``/``FAILED`` it published has not been applied. Every
other machine is idle: satisfied and waiting for an event, or failed with nothing in
flight. An idle machine is absent from the index, so however many of them a deployment
keeps, a reconciler run reads none of them.

The due time is the earliest of:

- a pending task: its ``not_before`` (a retry waiting out its backoff), else when the
  machine was last written (its start may have been lost);
- a running task: when it started. Every run looks at running attempts: the engine
  fails those past their deadline, and the AWS reconciler asks CodeBuild about builds
  whose completion events never came;
- a published, unapplied NEXT/FAILED, or an expire event not yet accepted
  (``expire_pending``): when the machine was last written.

A reconciler run reads the machines due by its start (``Store.due_machines``); the
engine then decides what, if anything, each one needs."""

from __future__ import annotations

from statewright.engine import format_time, parse_time
from statewright.model import SYSTEM_EVENTS, Machine


def due_at(machine: Machine) -> str | None:
    """The machine's due time (UTC, the stored timestamp format), or None when idle."""
    times: list[str] = []
    for record in machine.current_tasks().values():
        if record.status == "pending":
            times.append(record.not_before or machine.updated_at)
        elif record.status == "running":
            times.append(record.started_at or machine.updated_at)
    for event in SYSTEM_EVENTS:
        published = machine.published.get(event) == machine.epoch
        if published and machine.applied.get(event) != machine.epoch:
            times.append(machine.updated_at)
    if machine.expire_pending:
        # Its expire event was sent and no state took it yet: recovery sends it again
        # where the state accepts it (the store cannot tell which states do, so it
        # keeps every such machine until a state has accepted the event).
        times.append(machine.updated_at)
    # One format, so that stores can compare due times as text.
    return min(format_time(parse_time(t)) for t in times) if times else None
