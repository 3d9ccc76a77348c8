"""Pure transitions of docs/runtime.md: ``(machine, spec, input, now) -> Decision``.

No I/O here. The service loads the machine, asks :func:`decide` (or :func:`create`),
writes the decision's machine on condition of the version it read, and only then runs
the effects. Every decision is deterministic for its arguments, so the store may call it
again after a conflicting write.

docs/runtime.md describes the semantics, every point decided there is implemented here."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from statewright import expiry
from statewright.errors import (
    EventNotAccepted,
    InvalidRequest,
    MetadataTooLarge,
    NothingToRetry,
    ReservedEvent,
    UnknownEvent,
)
from statewright.limits import (
    MACHINE_OUTPUTS_MAX_BYTES,
    METADATA_MAX_BYTES,
    TASK_OUTPUT_MAX_BYTES,
    cut_text,
    json_size,
)
from statewright.model import (
    EVENT_SOURCE,
    OUTPUT_TOO_LARGE,
    REFERENCE_ERROR,
    START_FAILED,
    SYSTEM_EVENTS,
    TIMEOUT,
    BusEvent,
    DetailType,
    HistoryEntry,
    Machine,
    MachineStatus,
    Metadata,
    StateRun,
    SucceededRun,
    TaskFinishedDetail,
    TaskInvocation,
    TaskRecord,
    validate_machine_id,
    validate_metadata,
)

# Re-exported: the engine's time format, which timers' due times use too.
from statewright.model import format_time as format_time  # noqa: PLC0414
from statewright.model import parse_time as parse_time  # noqa: PLC0414
from statewright.spec.models import Action, Lifecycle, Spec
from statewright.spec.rules import INIT_STATE, MAX_IDLE_NEXT_TRANSITIONS
from statewright.spec.rules import SYSTEM_EVENTS as SYSTEM_EVENT_ORDER
from statewright.timers import Timer, TimerPurpose, task_guard

# Failures the same attempt would repeat: no retry (a reference that did not resolve
# resolves no better a second later; the same task would return the same output).
NOT_RETRIED = frozenset({REFERENCE_ERROR, OUTPUT_TOO_LARGE})


class Outcome(StrEnum):
    """What became of an input. ``refused`` inputs never reach the engine as decisions:
    the engine raises a domain error and the service reports ``refused``."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


# ---- inputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    """A new machine; ``source`` and ``actor`` (who asked) go into its history. ``ttl``:
    the seconds it may live, when the request asked (else its spec's lifecycle says)."""

    machine_id: str
    metadata: Mapping[str, Any] | None = None
    source: str | None = None
    actor: str = EVENT_SOURCE
    ttl: int | None = None


@dataclass(frozen=True)
class ExternalEvent:
    """An event from a user (HTTP, EventBridge rule). ``source`` and ``actor`` go into
    history."""

    event: str
    metadata: Mapping[str, Any] | None = None
    source: str | None = None
    actor: str = EVENT_SOURCE


@dataclass(frozen=True)
class InternalEvent:
    """``NEXT`` or ``FAILED`` as published by the control plane for ``epoch``."""

    event: str
    epoch: int


@dataclass(frozen=True)
class ScheduledEvent:
    """The event of the machine's spec schedule ``schedule`` for its fire at ``fire``
    (engine time format). It reaches a machine whose state handles the event and is
    listed by the schedule, once per fire; other machines are skipped, not refused."""

    schedule: str
    fire: str

    @property
    def actor(self) -> str:
        return schedule_actor(self.schedule)


def schedule_actor(schedule: str) -> str:
    """The history source and actor of a schedule's events."""
    return f"schedule:{schedule}"


@dataclass(frozen=True)
class TaskFinished:
    detail: TaskFinishedDetail


@dataclass(frozen=True)
class StartReport:
    """What an executor said when asked to start one attempt: its run id, or why the
    attempt could not start (``error``, and ``error_type`` when it has a name; the
    attempt then fails like a task failure)."""

    task: str
    epoch: int
    attempt: int
    run_id: str | None = None
    error: str | None = None
    error_type: str = START_FAILED


@dataclass(frozen=True)
class TasksStarted:
    """The follow-up write after the service started tasks: pending -> running."""

    reports: tuple[StartReport, ...]


@dataclass(frozen=True)
class Retry:
    """POST /machines/{id}/retry."""

    source: str | None = None
    actor: str = EVENT_SOURCE


@dataclass(frozen=True)
class Reconcile:
    """Bring a machine back on track after lost effects (crash, lost bus event):
    start pending tasks that are due, re-publish the NEXT/FAILED of a satisfied or
    failed state not yet applied, fail running tasks past their timeout.

    ``restart_running`` also restarts tasks recorded as running (a local process that
    crashed took its task runs with it); ``pending_grace_seconds`` leaves alone a
    pending task whose start may still be in flight from another process."""

    restart_running: bool = False
    pending_grace_seconds: float = 0.0


@dataclass(frozen=True)
class TimerFired:
    """A timer armed by an earlier decision came due (docs/runtime.md, "Timers"). It
    acts only while its guard still holds; otherwise it is stale and changes nothing."""

    timer: Timer


@dataclass(frozen=True)
class SetTtl:
    """POST /machines/{id}/ttl: the machine's ttl becomes ``ttl`` seconds, counted from now."""

    ttl: int
    source: str | None = None
    actor: str = EVENT_SOURCE


@dataclass(frozen=True)
class ExpireEvent:
    """The spec's expire event, sent by expiry for ``epoch`` (an internal Machine Event
    with ``"reason": "expiry"``)."""

    event: str
    epoch: int


Input = (
    ExternalEvent
    | InternalEvent
    | ScheduledEvent
    | TaskFinished
    | TasksStarted
    | Retry
    | Reconcile
    | TimerFired
    | SetTtl
    | ExpireEvent
)


# ---- effects ------------------------------------------------------------------------


@dataclass(frozen=True)
class StartTask:
    invocation: TaskInvocation


@dataclass(frozen=True)
class CancelTask:
    machine_id: str
    task: str
    run_id: str
    executor: str


@dataclass(frozen=True)
class Publish:
    event: BusEvent


@dataclass(frozen=True)
class Delete:
    machine_id: str


@dataclass(frozen=True)
class ArmTimer:
    """Keep ``timer`` and fire it when due (idempotent per timer name)."""

    timer: Timer


@dataclass(frozen=True)
class DisarmTimer:
    """The timer of this name is no longer wanted (best effort: if it fires anyway, it
    is stale)."""

    name: str


Effect = StartTask | CancelTask | Publish | Delete | ArmTimer | DisarmTimer


@dataclass(frozen=True)
class Decision:
    """``machine`` is what to write (None: write nothing). With a ``Delete`` effect it
    is the machine as it was when it was deleted. Effects run after the write."""

    outcome: Outcome
    machine: Machine | None = None
    effects: tuple[Effect, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    reason: str = ""

    @property
    def deleted(self) -> bool:
        return any(isinstance(e, Delete) for e in self.effects)


# ---- helpers ------------------------------------------------------------------------


def add_seconds(value: str, seconds: float) -> str:
    return format_time(parse_time(value) + timedelta(seconds=seconds))


def check_metadata_size(metadata: Metadata, *, merged: bool) -> None:
    """The machine's whole metadata as compact JSON stays within METADATA_MAX_BYTES."""
    size = json_size(metadata)
    if size > METADATA_MAX_BYTES:
        when = "after merging this event's metadata " if merged else ""
        raise MetadataTooLarge(
            f"the machine's metadata would be {size} bytes as compact JSON {when}"
            f"and a machine's metadata is limited to {METADATA_MAX_BYTES} bytes (16 KiB); "
            "send fewer or shorter values (keep large data elsewhere and put where it is "
            "in metadata)"
        )


def output_problem(machine: Machine, task: str, output: Any) -> str | None:
    """Why ``output`` cannot be kept as ``task``'s output on ``machine``, or None: one
    output is at most TASK_OUTPUT_MAX_BYTES and all of the machine's outputs together at
    most MACHINE_OUTPUTS_MAX_BYTES, as compact JSON."""
    if output is None:
        return None
    size = json_size(output)
    if size > TASK_OUTPUT_MAX_BYTES:
        return (
            f"the output of task {task} is {size} bytes as compact JSON and one task's "
            f"output is limited to {TASK_OUTPUT_MAX_BYTES} bytes (32 KiB); return less, or "
            "store it elsewhere (S3, say) and return where"
        )
    others = sum(
        json_size(record.output)
        for name, record in machine.tasks.items()
        if name != task and record.output is not None
    )
    if others + size > MACHINE_OUTPUTS_MAX_BYTES:
        return (
            f"with this output ({size} bytes) the task outputs kept on machine {machine.id} "
            f"would be {others + size} bytes as compact JSON, and a machine keeps at most "
            f"{MACHINE_OUTPUTS_MAX_BYTES} bytes (256 KiB) of outputs; return less from its "
            "tasks"
        )
    return None


def attempt_timer(machine_id: str, task: str, record: TaskRecord) -> Timer | None:
    """The ATTEMPT timer of a pending attempt waiting for its backoff (None if it has
    no ``not_before``)."""
    if record.not_before is None:
        return None
    guard = task_guard(task, record.epoch, record.attempt)
    return Timer(
        purpose=TimerPurpose.ATTEMPT, machine_id=machine_id, due=record.not_before, guard=guard
    )


def timeout_timer(machine_id: str, task: str, record: TaskRecord) -> Timer | None:
    """The TIMEOUT timer of a running attempt (None if it has no ``deadline``)."""
    if record.deadline is None:
        return None
    guard = task_guard(task, record.epoch, record.attempt)
    return Timer(
        purpose=TimerPurpose.TIMEOUT, machine_id=machine_id, due=record.deadline, guard=guard
    )


# These two run several times a decision, so they loop rather than build a generator
# for all() or any() (which costs more than the loop itself for the few tasks a state has).


def is_satisfied(machine: Machine, spec: Spec) -> bool:
    """Every task of the current state has succeeded (a state without tasks is)."""
    for name in spec.states[machine.state].tasks:
        if _current_status(machine, name) != "succeeded":
            return False
    return True


def has_failed_task(machine: Machine, spec: Spec) -> bool:
    """Some task of the current state has failed in the current epoch."""
    for name in spec.states[machine.state].tasks:
        if _current_status(machine, name) == "failed":
            return True
    return False


def _current_status(machine: Machine, task: str) -> str | None:
    """The status of ``task`` in the machine's current epoch (None: it has not run in it)."""
    record = machine.tasks.get(task)
    return record.status if record is not None and record.epoch == machine.epoch else None


# ---- the working copy ---------------------------------------------------------------


@dataclass
class _Step:
    """A decision under construction: a private copy of the machine plus what happened."""

    machine: Machine
    spec: Spec
    now: str
    effects: list[Effect] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    changed: bool = False
    deleted: bool = False
    # Who caused what this step records: the input's actor (docs/api.md, "History").
    actor: str = EVENT_SOURCE

    # -- recording

    def record(self, kind: str, **fields: Any) -> None:
        """Append a history entry of ``kind``; ``fields`` are HistoryEntry's (``epoch``
        and ``state`` default to the machine's)."""
        m = self.machine
        m.history_seq += 1
        fields.setdefault("epoch", m.epoch)
        fields.setdefault("state", m.state)
        entry = HistoryEntry(seq=m.history_seq, at=self.now, kind=kind, actor=self.actor, **fields)
        self.history.append(entry)
        self.changed = True

    def publish(self, detail_type: DetailType, detail: dict[str, Any]) -> None:
        self.effects.append(Publish(BusEvent(detail_type=detail_type, detail=detail)))

    def publish_system(self, event: str) -> None:
        m = self.machine
        self.publish(
            "Machine Event",
            {"machine_id": m.id, "event": event, "epoch": m.epoch, "spec": m.spec},
        )
        if m.published.get(event) != m.epoch:
            m.published[event] = m.epoch
            self.changed = True

    def decision(self, outcome: Outcome = Outcome.APPLIED) -> Decision:
        machine: Machine | None = None
        if self.changed or self.deleted:
            machine = self.machine
            machine.updated_at = self.now
        return Decision(
            outcome=outcome,
            machine=machine,
            effects=tuple(self.effects),
            history=tuple(self.history),
        )

    # -- tasks

    def invocation(self, name: str, record: TaskRecord) -> TaskInvocation:
        m = self.machine
        task_spec = self.spec.tasks[name]
        done = {n: r for n, r in m.tasks.items() if r.status == "succeeded" and n != name}
        return TaskInvocation(
            machine_id=m.id,
            spec=m.spec,
            spec_digest=m.spec_digest,
            state=record.state,
            task=name,
            task_spec=task_spec,
            epoch=record.epoch,
            attempt=record.attempt,
            metadata=dict(m.metadata),
            outputs={n: r.output for n, r in done.items()},
            succeeded={n: SucceededRun(epoch=r.epoch, attempt=r.attempt) for n, r in done.items()},
            base_dir=self.spec.base_dir,
            timeout_seconds=task_spec.timeout,
            incarnation=m.created_at,
        )

    def schedule(self, name: str, attempt: int, delay: float) -> None:
        """Reset ``name``'s record to a pending ``attempt`` of the current epoch and ask
        for it to start now, or, with a ``delay`` (a retry's backoff), arm an ATTEMPT
        timer for ``not_before`` (nothing waits in between, the timer starts it); or,
        while another run holds the state its runs work on, leave it pending, waiting
        for that run's task (its end starts this one)."""
        m = self.machine
        holder = self.holder(name, attempt)
        record = TaskRecord(
            executor=self.spec.tasks[name].executor,
            status="pending",
            attempt=attempt,
            state=m.state,
            epoch=m.epoch,
            not_before=None if holder else add_seconds(self.now, delay),
            waiting_for=[holder.task] if holder else None,
        )
        if holder is not None:
            if m.tasks.get(name) != record:
                m.tasks[name] = record
                self.changed = True
            return
        m.tasks[name] = record
        self.hold(name, record)
        m.idle_next = 0  # a task runs: the machine is making progress
        self.changed = True
        timer = attempt_timer(m.id, name, record)
        if delay > 0 and timer is not None:
            self.effects.append(ArmTimer(timer))
        else:
            self.effects.append(StartTask(self.invocation(name, record)))

    # -- runs that hold a state (docs/runtime.md, "One run per state file")

    def holder(self, name: str, attempt: int) -> StateRun | None:
        """The run holding the state ``name``'s runs work on, unless it is this very
        attempt (None: the state is free, or the task's runs keep no state)."""
        key = self.spec.tasks[name].state_key
        run = self.machine.state_runs.get(key) if key is not None else None
        if run is None or run.is_attempt(name, self.machine.epoch, attempt):
            return None
        return run

    def hold(self, name: str, record: TaskRecord) -> None:
        key = self.spec.tasks[name].state_key
        if key is None:
            return
        held = self.machine.state_runs.get(key)
        if held is None or not held.is_attempt(name, record.epoch, record.attempt):
            self.machine.state_runs[key] = StateRun(
                task=name,
                state=record.state,
                epoch=record.epoch,
                attempt=record.attempt,
                since=self.now,
            )
            self.changed = True

    def held_run(self, task: str, epoch: int, attempt: int) -> StateRun | None:
        """The run of this attempt, while it holds a state."""
        for run in self.machine.state_runs.values():
            if run.is_attempt(task, epoch, attempt):
                return run
        return None

    def release(self, task: str, epoch: int, attempt: int) -> StateRun | None:
        """The attempt's run has ended: the state it held is free (returns the run)."""
        runs = self.machine.state_runs
        for key, run in list(runs.items()):
            if run.is_attempt(task, epoch, attempt):
                del runs[key]
                self.changed = True
                return run
        return None

    def stop_run(self, task: str, run_id: str) -> None:
        self.effects.append(
            CancelTask(
                machine_id=self.machine.id,
                task=task,
                run_id=run_id,
                executor=self.spec.tasks[task].executor,
            )
        )

    def start_state_tasks(self) -> None:
        """On entering the current state: start the tasks that need nothing in it, and
        record the others as pending, waiting for what they need."""
        m = self.machine
        for name in self.spec.states[m.state].tasks:
            needs = self.spec.needs_in_state(m.state, name)
            if not needs:
                self.schedule(name, 1, 0.0)
                continue
            m.tasks[name] = TaskRecord(
                executor=self.spec.tasks[name].executor,
                status="pending",
                attempt=1,
                state=m.state,
                epoch=m.epoch,
                waiting_for=needs,
            )
            self.changed = True

    def release_waiting(self) -> None:
        """Start each waiting task of the current state whose needs have all succeeded
        and whose state is free; narrow ``waiting_for`` of the others."""
        m = self.machine
        for name in self.spec.states[m.state].tasks:
            record = m.tasks.get(name)
            if record is None or record.epoch != m.epoch or not record.waiting_for:
                continue
            waiting = [
                n
                for n in self.spec.needs_in_state(m.state, name)
                if not (
                    (need := m.tasks.get(n)) is not None
                    and need.epoch == m.epoch
                    and need.status == "succeeded"
                )
            ]
            if not waiting:
                self.schedule(name, record.attempt, 0.0)  # or wait for the state's holder
            elif waiting != record.waiting_for:
                record.waiting_for = waiting
                self.changed = True

    def restart(self, name: str, record: TaskRecord) -> None:
        """Ask again for an attempt already recorded (no write: starts are idempotent
        per run key)."""
        self.effects.append(StartTask(self.invocation(name, record)))

    def disarm(self, timer: Timer | None) -> None:
        if timer is not None:
            self.effects.append(DisarmTimer(timer.name))

    def time_out(self, name: str, record: TaskRecord) -> None:
        """The running attempt of ``name`` is past its deadline: stop its run and fail it
        with ``Timeout`` (the retry policy then applies)."""
        if record.run_id:
            self.stop_run(name, record.run_id)
        timeout = self.spec.tasks[name].timeout
        # A stopped run holds its state until its own end is reported.
        self.finish(
            name,
            "failed",
            error=f"timed out after {timeout} seconds",
            error_type=TIMEOUT,
            run_ended=not record.run_id,
        )

    def finish(  # noqa: PLR0913 — the fields of one task result, passed by name
        self,
        name: str,
        status: str,
        *,
        output: Any = None,
        error: str | None = None,
        error_type: str | None = None,
        redacted_outputs: list[str] | None = None,
        run_ended: bool = True,
    ) -> None:
        """Record the end of the current attempt of ``name``; on failure retry per the
        task's policy (unless the failure would only repeat) or fail the machine; start
        the tasks that were waiting for it. ``run_ended`` False: the attempt ends while
        its run is still being stopped (a timeout), so the run keeps its state until
        the run's own end is reported."""
        m = self.machine
        record = m.tasks[name]
        if run_ended:
            self.release(name, record.epoch, record.attempt)
        # The attempt ends: its timeout timer has nothing left to do.
        self.disarm(timeout_timer(m.id, name, record))
        record.deadline = None
        if status == "succeeded" and (problem := output_problem(m, name, output)) is not None:
            status, output, error, error_type = "failed", None, problem, OUTPUT_TOO_LARGE
        record.status = "succeeded" if status == "succeeded" else "failed"
        record.finished_at = self.now
        if record.started_at is None:
            record.started_at = self.now
        record.output = output
        record.redacted_outputs = list(redacted_outputs or [])
        failed = record.status == "failed"
        record.error = cut_text(error or "the task failed") if failed else None
        record.error_type = error_type if failed else None
        record.not_before = None
        self.record(
            "task_finished",
            task=name,
            attempt=record.attempt,
            status=record.status,
            error=record.error,
            error_type=record.error_type,
        )
        if failed:
            task_spec = self.spec.tasks[name]
            if record.attempt < task_spec.attempts and error_type not in NOT_RETRIED:
                nxt = record.attempt + 1
                delay = task_spec.retry.delay_before(nxt) if task_spec.retry else 0.0
                self.schedule(name, nxt, delay)
        self.release_waiting()
        self.settle()

    def cancel_current_tasks(self) -> None:
        """Tasks of the state being left that are still pending or running: their
        records are cancelled. A run that keeps state goes on (graceful) and keeps
        holding its state until it ends; with ``cancel: force`` it is stopped, and holds
        its state until the stopped run's end is reported. Other runs are stopped."""
        m = self.machine
        for name, record in m.tasks.items():
            if record.epoch != m.epoch or record.status not in ("pending", "running"):
                continue
            in_backoff = (
                record.status == "pending"
                and record.not_before is not None
                and parse_time(record.not_before) > parse_time(self.now)
            )
            self.disarm(timeout_timer(m.id, name, record))
            if record.status == "pending":
                self.disarm(attempt_timer(m.id, name, record))
            record.status = "cancelled"
            record.finished_at = self.now
            record.not_before = None
            record.deadline = None
            record.waiting_for = None
            self.record("task_cancelled", task=name, attempt=record.attempt, status="cancelled")
            held = self.held_run(name, record.epoch, record.attempt)
            if held is None:
                if record.run_id:
                    self.stop_run(name, record.run_id)
            elif in_backoff:
                # Still waiting for its backoff: no run has begun, none will.
                self.release(name, record.epoch, record.attempt)
                if record.run_id:
                    self.stop_run(name, record.run_id)
            elif self.spec.tasks[name].forced and held.run_id:
                self.stop_run(name, held.run_id)

    # -- states

    def enter(self, target: str, event: str | None) -> None:
        m = self.machine
        self.cancel_current_tasks()
        source = m.state
        m.previous_state = source
        m.state = target
        m.epoch += 1
        self.record("transition", event=event, from_state=source, to_state=target)
        self.publish(
            "Machine State Changed",
            {"machine_id": m.id, "spec": m.spec, "from": source, "to": target, "epoch": m.epoch},
        )
        self.start_state_tasks()
        self.settle()
        self.send_expire_event()

    def settle(self) -> None:
        """Recompute the machine's status and fire what the current state's tasks
        call for: deletion of a satisfied terminal state, NEXT, FAILED."""
        m = self.machine
        state = self.spec.states[m.state]
        if m.halted is not None:
            self.set_status("failed")
        elif has_failed_task(m, self.spec):
            self.set_status("failed")
            applied = m.applied.get("FAILED") == m.epoch
            if "FAILED" in state.on and not applied and m.published.get("FAILED") != m.epoch:
                self.publish_system("FAILED")
        elif is_satisfied(m, self.spec):
            if state.terminal and m.state_runs:
                # Runs of states left are still going: deleting the machine now would
                # leave them unrecorded (and their state unwatched); the last one's end
                # deletes it.
                self.set_status("running")
            elif state.terminal:
                self.delete()
            elif "NEXT" in state.on and m.applied.get("NEXT") != m.epoch:
                if m.idle_next >= MAX_IDLE_NEXT_TRANSITIONS:
                    self.halt()
                    return
                # Satisfied, with NEXT in flight: the transition is not over yet.
                self.set_status("running")
                if m.published.get("NEXT") != m.epoch:
                    self.publish_system("NEXT")
            else:
                self.set_status("waiting")
        else:
            self.set_status("running")

    def halt(self) -> None:
        """Stop an endless NEXT loop: no NEXT is published; the machine fails and waits
        for an external event, which still works."""
        m = self.machine
        m.halted = (
            f"NEXT moved the machine {m.idle_next} times in a row with no task run and no "
            f"external event, last into state {m.state}: its states without tasks hand NEXT "
            "around a cycle (lint rule next-cycle); send an event to move it on"
        )
        self.record("halted", error=m.halted)
        self.set_status("failed")

    def set_status(self, status: MachineStatus) -> None:
        if self.machine.status != status:
            self.machine.status = status
            self.changed = True

    def delete(self) -> None:
        m = self.machine
        self.deleted = True
        self.disarm_expiry()
        self.publish(
            "Machine Deleted",
            {"machine_id": m.id, "spec": m.spec, "state": m.state, "epoch": m.epoch},
        )
        self.effects.append(Delete(m.id))

    # -- time to live (docs/runtime.md, "TTL")

    def disarm_expiry(self) -> None:
        """The expiry and warning timers still to come are no longer wanted (they would
        be stale: their guard is the expires_at being left)."""
        lifecycle, m = self.spec.lifecycle, self.machine
        if lifecycle is not None and not m.expired:
            for timer in expiry.expiry_timers(m, lifecycle, self.now):
                self.disarm(timer)

    def move_expiry(self, expires_at: str) -> None:
        """The machine now expires at ``expires_at``: arm its expiry and its warnings
        still to come, and drop those of the time before."""
        lifecycle, m = self.spec.lifecycle, self.machine
        assert lifecycle is not None
        self.disarm_expiry()
        m.expires_at = expires_at
        m.warned = []
        self.effects.extend(ArmTimer(t) for t in expiry.expiry_timers(m, lifecycle, self.now))
        self.changed = True

    def accepted(self, event: str) -> None:
        """What an accepted external event means for expiry: the expire event, whoever
        sent it, ends a pending expiry; one of ``extend_on`` moves expires_at to now +
        the machine's ttl, never earlier than it was. An expired machine stays expired
        (only a new ttl revives it)."""
        lifecycle, m = self.spec.lifecycle, self.machine
        if lifecycle is not None and event == lifecycle.expire_event and m.expire_pending:
            m.expire_pending = False
        if (
            lifecycle is None
            or event not in lifecycle.extend_on
            or m.expires_at is None
            or m.ttl_seconds is None
            or m.expired
        ):
            return
        later = add_seconds(self.now, m.ttl_seconds)
        if parse_time(later) > parse_time(m.expires_at):
            self.move_expiry(later)

    def send_expire_event(self) -> None:
        """While the expire event waits for a state that accepts it: publish it if the
        current state does (it then comes back as an ExpireEvent for this epoch)."""
        lifecycle, m = self.spec.lifecycle, self.machine
        if lifecycle is None or not m.expire_pending or self.deleted:
            return
        if self.spec.handler(m.state, lifecycle.expire_event) is None:
            return  # sent again on the next state entry
        self.publish("Machine Event", expiry.expire_event_detail(m, lifecycle.expire_event))

    def run_actions(self, actions: list[Action], event: str) -> None:
        target = next((a.state for a in actions if a.action == "advance" and a.state), None)
        if target is not None:
            self.enter(target, event)
        else:
            # no-op (or an empty handler, which CloudSeam treats as no-op)
            self.settle()


# ---- public API ---------------------------------------------------------------------


def create(spec: Spec, inp: Create, now: str) -> Decision:
    """A new machine in INIT at epoch 1, INIT's tasks started (docs/runtime.md#machines)."""
    validate_machine_id(inp.machine_id)
    metadata = validate_metadata(inp.metadata)
    if metadata:  # (no metadata is always within the limit)
        check_metadata_size(metadata, merged=False)
    if inp.ttl is not None:
        ttl: int | None = expiry.requested_ttl(spec, inp.ttl)
    else:
        ttl = spec.lifecycle.ttl if spec.lifecycle is not None else None
    machine = Machine(
        id=inp.machine_id,
        spec=spec.name,
        spec_digest=spec.digest,
        state=INIT_STATE,
        epoch=1,
        version=1,
        metadata=metadata,
        created_at=now,
        updated_at=now,
        ttl_seconds=ttl,
    )
    step = _Step(machine=machine, spec=spec, now=now, actor=inp.actor)
    if ttl is not None:
        step.move_expiry(add_seconds(now, ttl))
    step.record("created", to_state=INIT_STATE, source=inp.source, expires_at=machine.expires_at)
    step.publish(
        "Machine State Changed",
        {"machine_id": machine.id, "spec": spec.name, "from": None, "to": INIT_STATE, "epoch": 1},
    )
    step.start_state_tasks()
    step.settle()
    return step.decision()


def decide(machine: Machine, spec: Spec, inp: Input, now: str) -> Decision:
    """The decision for ``inp`` on ``machine``. Raises a domain error (StatewrightError)
    for input that is refused; the machine passed in is never modified."""
    step = _Step(machine=_working_copy(machine), spec=spec, now=now, actor=_actor_of(inp))
    match inp:
        case ExternalEvent():
            decision = _external(step, inp)
        case InternalEvent():
            decision = _internal(step, inp)
        case TaskFinished():
            decision = _task_finished(step, inp.detail)
        case TasksStarted():
            decision = _tasks_started(step, inp)
        case Retry():
            decision = _retry(step, inp)
        case ScheduledEvent():
            decision = _scheduled(step, inp)
        case TimerFired():
            decision = _timer_fired(step, inp.timer)
        case SetTtl() | ExpireEvent():
            decision = _expiry_input(step, inp)
        case Reconcile():
            decision = _reconcile(step, inp)
    return decision


# Inputs that carry their actor. (A tuple, built once: ``A | B`` in isinstance builds
# a union object on every call.)
_WITH_ACTOR = (ExternalEvent, Retry, ScheduledEvent, SetTtl)


def _actor_of(inp: Input) -> str:
    """Who caused what ``inp`` records: the caller of a request, the schedule, expiry
    for the expire event, else the control plane (expiry timers set it themselves)."""
    if isinstance(inp, _WITH_ACTOR):
        return inp.actor
    return expiry.EXPIRY if isinstance(inp, ExpireEvent) else EVENT_SOURCE


def _external(step: _Step, inp: ExternalEvent) -> Decision:
    spec, m = step.spec, step.machine
    event = inp.event
    if event in SYSTEM_EVENTS:
        raise ReservedEvent(
            f"{event} is a system event that only Statewright itself fires; "
            f"send one of the spec's events instead: {_listing(spec.events)}"
        )
    if event not in spec.events:
        raise UnknownEvent(
            f"{event} is not an event of spec {spec.name}{_did_you_mean(event, spec.events)}; "
            f"its events are: {_listing(spec.events)}"
        )
    metadata = validate_metadata(inp.metadata)
    actions = spec.handler(m.state, event)
    if actions is None:
        accepted = spec.accepted_events(m.state)
        raise EventNotAccepted(
            f"{event} is not accepted in state {m.state}; accepted there: "
            + (", ".join(accepted) if accepted else "no event")
        )
    m.metadata.update(metadata)
    if metadata:
        check_metadata_size(m.metadata, merged=True)
    m.idle_next = 0
    m.halted = None
    step.record("event", event=event, source=inp.source)
    step.accepted(event)
    step.run_actions(actions, event)
    return step.decision()


def _scheduled(step: _Step, inp: ScheduledEvent) -> Decision:
    spec, m = step.spec, step.machine
    schedule = spec.schedule(inp.schedule)
    if schedule is None:
        return Decision(Outcome.STALE, reason=f"the machine's spec has no schedule {inp.schedule}")
    if m.schedule_fires.get(inp.schedule, "") >= inp.fire:
        return Decision(
            Outcome.DUPLICATE, reason=f"schedule {inp.schedule} fire {inp.fire} already applied"
        )
    actions = spec.handler(m.state, schedule.event)
    if actions is None or not schedule.applies_in(m.state):
        return Decision(
            Outcome.STALE,
            reason=f"schedule {inp.schedule} does not apply in state {m.state}; skipped",
        )
    m.schedule_fires[inp.schedule] = inp.fire
    m.idle_next = 0
    m.halted = None
    source = schedule_actor(inp.schedule)
    step.record("event", event=schedule.event, source=source)
    step.accepted(schedule.event)
    step.run_actions(actions, schedule.event)
    return step.decision()


def _internal(step: _Step, inp: InternalEvent) -> Decision:
    spec, m = step.spec, step.machine
    if inp.event not in SYSTEM_EVENTS:
        raise UnknownEvent(f"{inp.event} is not a system event; those are NEXT and FAILED")
    if inp.epoch != m.epoch:
        if m.applied.get(inp.event) == inp.epoch:
            # The very event that moved the machine on, delivered again.
            return Decision(
                Outcome.DUPLICATE, reason=f"{inp.event} of epoch {inp.epoch} already applied"
            )
        return Decision(
            Outcome.STALE, reason=f"{inp.event} for epoch {inp.epoch}, machine is at {m.epoch}"
        )
    actions = spec.handler(m.state, inp.event)
    if actions is None:
        accepted = spec.accepted_events(m.state)
        raise EventNotAccepted(
            f"{inp.event} is not accepted in state {m.state}; accepted there: "
            + (", ".join(accepted) if accepted else "no event")
        )
    if m.applied.get(inp.event) == m.epoch:
        return Decision(Outcome.DUPLICATE, reason=f"{inp.event} of epoch {m.epoch} already applied")
    if inp.event == "NEXT" and not is_satisfied(m, spec):
        return Decision(Outcome.STALE, reason=f"state {m.state} is not satisfied")
    if inp.event == "FAILED" and m.status != "failed":
        return Decision(Outcome.STALE, reason="no task of the current state has failed")
    m.applied[inp.event] = m.epoch
    if inp.event == "NEXT" and not spec.states[m.state].tasks:
        m.idle_next += 1
    step.record("event", event=inp.event, source=EVENT_SOURCE)
    step.run_actions(actions, inp.event)
    return step.decision()


def _task_finished(step: _Step, detail: TaskFinishedDetail) -> Decision:
    m = step.machine
    record = m.tasks.get(detail.task)
    awaited = _in_flight(m, detail.task, detail.epoch, detail.attempt)
    if not awaited and step.held_run(detail.task, detail.epoch, detail.attempt) is not None:
        return _run_ended(step, detail)
    if detail.epoch != m.epoch:
        return Decision(
            Outcome.STALE,
            reason=f"task {detail.task} of epoch {detail.epoch}, machine is at {m.epoch}",
        )
    if record is None or record.epoch != m.epoch:
        raise InvalidRequest(
            f"task {detail.task} does not run in state {m.state}; its tasks are: "
            + _listing(step.spec.states[m.state].tasks)
        )
    if detail.attempt != record.attempt:
        return Decision(
            Outcome.STALE,
            reason=f"attempt {detail.attempt} of {detail.task}, current is {record.attempt}",
        )
    if record.status not in ("pending", "running"):
        return Decision(
            Outcome.DUPLICATE,
            reason=f"attempt {detail.attempt} of {detail.task} already {record.status}",
        )
    step.finish(
        detail.task,
        detail.status,
        output=detail.output,
        error=detail.error,
        error_type=detail.error_type,
        redacted_outputs=detail.redacted_outputs,
    )
    return step.decision()


def _tasks_started(step: _Step, inp: TasksStarted) -> Decision:
    m = step.machine
    for report in inp.reports:
        record = m.tasks.get(report.task)
        current = (
            record is not None and record.epoch == report.epoch and record.attempt == report.attempt
        )
        if record is None or not current or record.status == "cancelled":
            held = step.held_run(report.task, report.epoch, report.attempt)
            if held is not None:
                _started_after_leaving(step, report, held)
                continue
            # The attempt was superseded while it started: stop the run it got.
            if report.run_id and record is not None:
                step.effects.append(
                    CancelTask(
                        machine_id=m.id,
                        task=report.task,
                        run_id=report.run_id,
                        executor=record.executor,
                    )
                )
            continue
        if record.status not in ("pending", "running"):
            continue  # it already finished: the report came after the result
        if report.error is not None:
            record.run_id = report.run_id
            step.finish(report.task, "failed", error=report.error, error_type=report.error_type)
            continue
        restarted = record.status == "running"
        # A restarted run has a deadline of its own; the old one's timer is stale.
        step.disarm(timeout_timer(m.id, report.task, record))
        record.status = "running"
        record.run_id = report.run_id
        held = step.held_run(report.task, report.epoch, report.attempt)
        if held is not None:
            held.run_id = report.run_id
        record.started_at = step.now
        record.not_before = None
        record.deadline = add_seconds(step.now, step.spec.tasks[report.task].timeout)
        if (timer := timeout_timer(m.id, report.task, record)) is not None:
            step.effects.append(ArmTimer(timer))
        step.record(
            "task_started",
            task=report.task,
            attempt=record.attempt,
            status="running",
            source="recovery" if restarted else None,
        )
        step.settle()
    if not step.changed:
        return Decision(Outcome.DUPLICATE, effects=tuple(step.effects), reason="nothing to record")
    return step.decision()


def _started_after_leaving(step: _Step, report: StartReport, held: StateRun) -> None:
    """A run that holds a state started after its state was left: like one that was
    running then, it goes on (graceful) or is stopped (``cancel: force``), and holds the
    state until it ends. One that could not start holds nothing."""
    if report.run_id is None:
        step.release(report.task, report.epoch, report.attempt)
        step.release_waiting()
        step.settle()
        return
    if held.run_id != report.run_id:
        held.run_id = report.run_id
        step.changed = True
    if step.spec.tasks[report.task].forced:
        step.stop_run(report.task, report.run_id)


def _run_ended(step: _Step, detail: TaskFinishedDetail) -> Decision:
    """The end of a run that outlived its attempt (its state was left, or it was stopped
    after a timeout): recorded in history (the task's record stays as it is), and the
    state it held is free for the run waiting for it."""
    run = step.release(detail.task, detail.epoch, detail.attempt)
    assert run is not None
    step.record(
        "run_finished",
        task=detail.task,
        attempt=detail.attempt,
        status=detail.status,
        error=cut_text(detail.error) if detail.error else None,
        error_type=detail.error_type,
        epoch=run.epoch,
        state=run.state,
    )
    step.release_waiting()
    step.settle()
    return step.decision()


def _retry(step: _Step, inp: Retry) -> Decision:
    m = step.machine
    failed = [n for n, r in m.current_tasks().items() if r.status == "failed"]
    if not failed:
        raise NothingToRetry(
            f"machine {m.id} has no failed task in state {m.state}; retry re-runs the "
            "failed tasks of the current state"
        )
    m.published.pop("FAILED", None)
    m.applied.pop("FAILED", None)
    step.record("retry", source=inp.source)
    for name in step.spec.states[m.state].tasks:
        if name in failed:
            step.schedule(name, m.tasks[name].attempt + 1, 0.0)
    step.settle()
    return step.decision()


def _timer_fired(step: _Step, timer: Timer) -> Decision:
    """ATTEMPT: start the pending attempt whose backoff is over. TIMEOUT: fail the
    running attempt past its deadline. Only for the very attempt (and due time) the
    timer was armed for; anything else is stale, and nothing is written. EXPIRY and
    WARNING: see _expiry_timer_fired."""
    m = step.machine
    if timer.purpose in (TimerPurpose.EXPIRY, TimerPurpose.WARNING):
        return _expiry_timer_fired(step, timer)
    task, epoch, attempt = (timer.guard.get(k) for k in ("task", "epoch", "attempt"))
    record = m.tasks.get(task) if isinstance(task, str) else None
    if record is None or epoch != m.epoch or record.epoch != epoch or record.attempt != attempt:
        now_at = f"epoch {m.epoch}" + (f", attempt {record.attempt}" if record else "")
        return Decision(
            Outcome.STALE,
            reason=f"{timer.purpose} timer of {task} (epoch {epoch}, attempt {attempt}) "
            f"no longer applies: the task is at {now_at}",
        )
    assert isinstance(task, str)
    if timer.purpose is TimerPurpose.ATTEMPT:
        if record.status != "pending" or record.waiting_for or record.not_before != timer.due:
            return Decision(Outcome.STALE, reason=f"attempt {attempt} of {task} is not waiting")
        step.restart(task, record)
        return step.decision()
    if record.status != "running" or record.deadline != timer.due:
        return Decision(Outcome.STALE, reason=f"attempt {attempt} of {task} is not running")
    step.time_out(task, record)
    return step.decision()


def _expiry_input(step: _Step, inp: SetTtl | ExpireEvent) -> Decision:
    return _set_ttl(step, inp) if isinstance(inp, SetTtl) else _expire_event(step, inp)


def _set_ttl(step: _Step, inp: SetTtl) -> Decision:
    """The machine's ttl becomes ``inp.ttl`` (at most max_ttl), expiring that long from
    now; an expiry that came and was not yet accepted is called off."""
    m = step.machine
    m.ttl_seconds = expiry.requested_ttl(step.spec, inp.ttl)
    step.move_expiry(add_seconds(step.now, m.ttl_seconds))  # (an expired one has no timers left)
    m.expired = False
    m.expire_pending = False
    step.record("ttl_changed", source=inp.source, expires_at=m.expires_at)
    return step.decision()


def _expire_event(step: _Step, inp: ExpireEvent) -> Decision:
    """The expire event as expiry sent it: applied like an external event (source and
    actor ``expiry``) if it is still pending, for this epoch, and the state accepts it;
    after that, no further expiry. Anything else is stale."""
    spec, m = step.spec, step.machine
    lifecycle = spec.lifecycle
    if lifecycle is None or inp.event != lifecycle.expire_event or not m.expire_pending:
        return Decision(Outcome.STALE, reason=f"no expire event {inp.event} is pending")
    if inp.epoch != m.epoch:
        return Decision(
            Outcome.STALE, reason=f"expire event for epoch {inp.epoch}, machine is at {m.epoch}"
        )
    actions = spec.handler(m.state, inp.event)
    if actions is None:
        return Decision(
            Outcome.STALE,
            reason=f"{inp.event} is not accepted in state {m.state}; sent again on the next entry",
        )
    m.expire_pending = False
    m.idle_next = 0
    m.halted = None
    step.record("event", event=inp.event, source=expiry.EXPIRY)
    step.run_actions(actions, inp.event)
    return step.decision()


def _expiry_timer_fired(step: _Step, timer: Timer) -> Decision:
    """EXPIRY: the machine expires (history ``expired``) and its expire event is sent.
    WARNING: ``Machine Expiring`` and history ``expiring``, once per offset. Only for
    the expires_at the timer was armed for, and not once the machine has expired."""
    lifecycle, m = step.spec.lifecycle, step.machine
    step.actor = expiry.EXPIRY
    armed_for = timer.guard.get("expires_at")
    if lifecycle is None or m.expired or m.expires_at is None or armed_for != m.expires_at:
        return Decision(
            Outcome.STALE,
            reason=f"{timer.purpose} timer for expiry at {armed_for}; the machine "
            + ("has expired" if m.expired else f"expires at {m.expires_at}"),
        )
    if timer.purpose is TimerPurpose.EXPIRY:
        m.expired = True
        m.expire_pending = True
        step.record("expired", source=expiry.EXPIRY, expires_at=m.expires_at)
        step.send_expire_event()
        return step.decision()
    return _warning_fired(step, lifecycle, timer)


def _warning_fired(step: _Step, lifecycle: Lifecycle, timer: Timer) -> Decision:
    m = step.machine
    assert m.expires_at is not None
    if parse_time(step.now) >= parse_time(m.expires_at):
        return Decision(Outcome.STALE, reason="a warning that came no earlier than expiry")
    offset = timer.guard.get("offset")
    if not isinstance(offset, int) or offset not in lifecycle.warn_before:
        return Decision(Outcome.STALE, reason=f"no warning {offset!r} before expiry in the spec")
    if offset in m.warned:
        return Decision(Outcome.DUPLICATE, reason=f"warning {offset}s before expiry already sent")
    m.warned = [*m.warned, offset]  # a new list: the machine read is shared, never changed
    step.record("expiring", source=expiry.EXPIRY, expires_at=m.expires_at)
    step.publish(expiry.EXPIRING_DETAIL_TYPE, expiry.expiring_detail(m, step.now))
    return step.decision()


def _reconcile(step: _Step, inp: Reconcile) -> Decision:
    m = step.machine
    now = parse_time(step.now)
    _reconcile_state_runs(step, now, restart=inp.restart_running)
    step.release_waiting()
    for name in step.spec.states[m.state].tasks:
        record = m.tasks.get(name)
        if record is None or record.epoch != m.epoch or record.waiting_for:
            continue
        if record.status == "running":
            _reconcile_running(step, name, record, now, restart=inp.restart_running)
        elif record.status == "pending":
            _reconcile_pending(step, name, record, now, inp)
    if not step.deleted:
        _republish_system_events(step)
    return step.decision()


def _reconcile_running(
    step: _Step, name: str, record: TaskRecord, now: datetime, *, restart: bool
) -> None:
    """A running task past its timeout fails (and its run is stopped); with ``restart``
    (the runs died with the process) it starts again."""
    if record.deadline is not None:
        deadline = parse_time(record.deadline)
    else:  # recorded before deadlines were: count from its start
        started = parse_time(record.started_at) if record.started_at else now
        deadline = started + timedelta(seconds=step.spec.tasks[name].timeout)
    if deadline <= now:
        step.time_out(name, record)
    elif restart:
        step.restart(name, record)


def _reconcile_state_runs(step: _Step, now: datetime, *, restart: bool) -> None:
    """Runs holding a state whose attempt is over (state left, timed out) and whose end
    never came: after a restart (``restart``: they died with the process that ran them)
    or past their task's timeout (stopped again, as a timeout is), the state is freed."""
    m = step.machine
    released = False
    for run in list(m.state_runs.values()):
        if _in_flight(m, run.task, run.epoch, run.attempt):
            continue  # the attempt's own record is reconciled below
        task = step.spec.tasks.get(run.task)
        timeout = task.timeout if task is not None else 0
        if restart:
            error = "the run ended with the control plane that ran it"
        elif parse_time(run.since) + timedelta(seconds=timeout) <= now:
            error = f"no end of the run was reported within its timeout ({timeout} seconds)"
            if run.run_id and task is not None:
                step.stop_run(run.task, run.run_id)
        else:
            continue
        step.release(run.task, run.epoch, run.attempt)
        step.record(
            "run_finished",
            task=run.task,
            attempt=run.attempt,
            status="failed",
            error=error,
            epoch=run.epoch,
            state=run.state,
        )
        released = True
    if released:
        step.settle()


def _reconcile_pending(
    step: _Step, name: str, record: TaskRecord, now: datetime, inp: Reconcile
) -> None:
    """A pending task whose start was lost starts again once due (past the grace period
    a start still in flight may need; after a restart, at once); one still waiting for
    its backoff gets its ATTEMPT timer armed again (idempotent), in case it was lost."""
    due = parse_time(record.not_before) if record.not_before else now
    wait = (due - now).total_seconds()
    if wait > 0:
        if (timer := attempt_timer(step.machine.id, name, record)) is not None:
            step.effects.append(ArmTimer(timer))
    elif inp.restart_running or wait + inp.pending_grace_seconds <= 0:
        step.restart(name, record)


def _republish_system_events(step: _Step) -> None:
    """A NEXT (satisfied state) or FAILED (failed task) that was never applied is
    published again, unless this decision publishes it already."""
    m, spec = step.machine, step.spec
    state = spec.states[m.state]
    published_now = {e.event.detail.get("event") for e in step.effects if isinstance(e, Publish)}
    for event in SYSTEM_EVENT_ORDER:
        wanted = event in state.on and m.applied.get(event) != m.epoch
        if event == "NEXT":
            wanted = wanted and not state.terminal and is_satisfied(m, spec)
            wanted = wanted and m.halted is None
        else:
            wanted = wanted and m.status == "failed"
        if wanted and event not in published_now:
            step.publish_system(event)
    lifecycle = spec.lifecycle
    if lifecycle is not None and lifecycle.expire_event not in published_now:
        step.send_expire_event()  # a pending expire event whose publishing was lost


def _in_flight(machine: Machine, task: str, epoch: int, attempt: int) -> bool:
    """Whether this attempt is the task's current one, pending or running."""
    record = machine.tasks.get(task)
    return (
        record is not None
        and epoch == record.epoch == machine.epoch
        and attempt == record.attempt
        and record.status in ("pending", "running")
    )


def _working_copy(machine: Machine) -> Machine:
    """A copy the step may change freely. Containers and task records are copied; the
    values inside them (task outputs) are replaced, never changed in place, so they are
    shared — a deep copy would cost most of a decision's time."""
    copied = machine.model_copy()
    copied.tasks = {name: record.model_copy() for name, record in machine.tasks.items()}
    copied.metadata = dict(machine.metadata)
    copied.published = dict(machine.published)
    copied.applied = dict(machine.applied)
    copied.state_runs = {key: run.model_copy() for key, run in machine.state_runs.items()}
    return copied


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _did_you_mean(word: str, choices: list[str]) -> str:
    by_upper = {c.upper(): c for c in choices}
    if word.upper() in by_upper:
        return f" (did you mean {by_upper[word.upper()]}?)"
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
