"""The application layer shared by the HTTP API, the Lambda dispatcher and the local bus:
load, let the engine decide, write on condition of the version read (the Store retries
conflicts with jitter), then run the decision's effects.

Effects run only after their write succeeded, and each is safe to repeat: task starts
are idempotent per run key, late results of old epochs are stale, NEXT/FAILED carry the
epoch they were published for. A crash between the write and the effects is repaired by
:meth:`Service.recover` (the local server on start, the AWS reconciler on a schedule)."""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from statewright import engine, expiry, schedules
from statewright.access import LOCAL_PRINCIPAL, AccessPolicy, Action
from statewright.attempt_config import UnresolvedReference, resolve_invocation
from statewright.catalog import SpecCatalog
from statewright.engine import (
    ArmTimer,
    CancelTask,
    Create,
    Decision,
    DisarmTimer,
    ExpireEvent,
    ExternalEvent,
    InternalEvent,
    Outcome,
    Publish,
    Reconcile,
    Retry,
    ScheduledEvent,
    SetTtl,
    StartReport,
    StartTask,
    TaskFinished,
    TasksStarted,
    TimerFired,
)
from statewright.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    ItemTooLarge,
    MachineExists,
    MachineNotFound,
    MetadataTooLarge,
    SpecNotFound,
    StartDeferred,
    StatewrightError,
    UnknownSpec,
)
from statewright.model import (
    EVENT_SOURCE,
    OUTPUT_TOO_LARGE,
    REFERENCE_ERROR,
    SYSTEM_EVENTS,
    BusEvent,
    HistoryEntry,
    Machine,
    Metadata,
    TaskFinishedDetail,
    TaskInvocation,
    now_iso,
    validate_machine_id,
)
from statewright.ports import Bus, Executor, IdempotencyRecord, Store, Timers, Write
from statewright.report_tokens import ReportTokens
from statewright.schedules import ScheduleFire, fan_out_page, fire_time
from statewright.spec.models import Spec
from statewright.timers import Timer, TimerPurpose

__all__ = ["MetricsSink", "Outcome", "RecoveryReport", "Service"]

log = logging.getLogger(__name__)

MAX_PAGE = 1000
API_SOURCE = "api"


class MetricsSink(Protocol):
    """Where counters go (Powertools Metrics on AWS; nothing, or a test double, locally)."""

    def count(self, name: str, value: int = 1) -> None: ...


class _NoMetrics:
    def count(self, name: str, value: int = 1) -> None:
        return None


@dataclass
class RecoveryReport:
    machines_scanned: int = 0
    machines_repaired: int = 0
    tasks_started: int = 0
    tasks_timed_out: int = 0
    events_published: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Applied:
    decision: Decision
    machine: Machine  # as stored after the write (or as it was when deleted / unchanged)


class Service:
    def __init__(  # noqa: PLR0913 — the ports and options the composition roots wire, by name
        self,
        *,
        store: Store,
        bus: Bus,
        executors: Mapping[str, Executor],
        catalog: SpecCatalog,
        clock: Callable[[], str] = now_iso,
        metrics: MetricsSink | None = None,
        access: AccessPolicy | None = None,
        timers: Timers | None = None,
        report_tokens: ReportTokens | None = None,
    ) -> None:
        self.store = store
        # None: no timer is kept (a deployment without a timers adapter); backoffs and
        # timeouts then wait for the reconciler, which starts due attempts and fails
        # attempts past their deadline.
        self.timers = timers
        # None (locally): reports come from in-process executors and need no token.
        self.report_tokens = report_tokens
        # None: every caller may do everything (no ``access`` rules configured).
        self.access = access
        self.bus = bus
        self.executors = executors
        self.catalog = catalog
        self.clock = clock
        self.metrics: MetricsSink = metrics if metrics is not None else _NoMetrics()

    # ---- specs ------------------------------------------------------------------------

    def list_specs(self) -> list[Spec]:
        return self.catalog.specs()

    def get_spec(self, name: str) -> Spec:
        spec = self.catalog.get(name)
        if spec is None:
            raise SpecNotFound(f"no spec named {name!r}; loaded specs: {self._spec_names()}")
        return spec

    # ---- queries ------------------------------------------------------------------------

    # ``caller`` (here and below): the API caller's principal, checked against the
    # access rules and recorded as the actor; None for the control plane's own calls.

    def get_machine(self, machine_id: str, *, caller: str | None = None) -> Machine:
        validate_machine_id(machine_id)
        self._check(caller, "read", machine_id)
        machine = self.store.get(machine_id)
        if machine is None:
            raise MachineNotFound.of(machine_id)
        self._check_machine(caller, "read", machine)
        return machine

    def list_machines(
        self,
        *,
        spec: str | None = None,
        state: str | None = None,
        limit: int = 100,
        next_token: str | None = None,
        caller: str | None = None,
    ) -> tuple[list[Machine], str | None]:
        """A page of machines; with access rules, only those ``caller`` may read (a page
        may then hold fewer than ``limit``, even none, and still have a next_token)."""
        _check_limit(limit)
        with self._counting_unreadable():
            page, token = self.store.list_machines(
                spec=spec, state=state, limit=limit, next_token=next_token
            )
        access = self.access
        if access is not None and caller is not None:
            page = [m for m in page if access.allows(caller, "read", spec=m.spec, machine_id=m.id)]
        return page, token

    @contextlib.contextmanager
    def _counting_unreadable(self) -> Iterator[None]:
        """Counts, as a metric, the machine items the store's listings in the block had
        to leave out because they cannot be read."""
        before = self.store.unreadable_machines
        yield
        if skipped := self.store.unreadable_machines - before:
            self.metrics.count("machines_unreadable", skipped)

    def history(
        self,
        machine_id: str,
        *,
        limit: int = 100,
        next_token: str | None = None,
        caller: str | None = None,
    ) -> tuple[list[HistoryEntry], str | None]:
        _check_limit(limit)
        # a deleted machine has no history to show
        self.get_machine(machine_id, caller=caller)
        return self.store.history(machine_id, limit=limit, next_token=next_token)

    # ---- idempotency records (the API's Idempotency-Key) -----------------------------

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        return self.store.get_idempotency(key)

    def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Store the record unless an unexpired one exists; False when it did."""
        return self.store.put_idempotency(record)

    # ---- commands ---------------------------------------------------------------------

    def create_machine(
        self,
        spec: str,
        machine_id: str | None = None,
        metadata: Metadata | None = None,
        *,
        ttl: str | None = None,
        caller: str | None = None,
    ) -> Machine:
        """A new machine in INIT (docs/runtime.md#machines). MachineExists when the id is
        taken. ``ttl``: a duration (``24h``) instead of the spec's (docs/runtime.md#ttl)."""
        machine_id = machine_id if machine_id is not None else _new_id()
        validate_machine_id(machine_id)
        seconds = expiry.parse_ttl(ttl) if ttl is not None else None
        self._check(caller, "create", machine_id, spec=spec)
        spec_obj = self._spec_to_create(spec)
        inp = Create(machine_id, metadata, source=API_SOURCE, actor=_actor(caller), ttl=seconds)
        return self._store_new(spec_obj, engine.create(spec_obj, inp, self.clock()))

    def send_event(  # noqa: PLR0913 — the fields of POST /machines/{id}/events, by name
        self,
        machine_id: str,
        event: str,
        metadata: Metadata | None = None,
        spec: str | None = None,
        *,
        ttl: str | None = None,
        caller: str | None = None,
    ) -> Machine:
        """Apply an external event and return the machine after the transition. With
        ``spec``, a machine that does not exist is created first (in the same write, so a
        refused event creates nothing), with ``ttl`` when given (ignored for a machine
        that exists). When the transition deleted the machine, the machine is returned
        as it was at its deletion."""
        inp = ExternalEvent(event=event, metadata=metadata, source=API_SOURCE, actor=_actor(caller))
        seconds = expiry.parse_ttl(ttl) if ttl is not None else None
        return self._send_event(machine_id, inp, spec, caller, ttl=seconds)

    def set_ttl(self, machine_id: str, ttl: str, *, caller: str | None = None) -> Machine:
        """The machine's ttl becomes ``ttl`` (a duration, at most the spec's max_ttl),
        counted from now; a pending expiry is called off (docs/runtime.md#ttl)."""
        validate_machine_id(machine_id)
        seconds = expiry.parse_ttl(ttl)
        self._check(caller, "ttl", machine_id)
        inp = SetTtl(seconds, source=API_SOURCE, actor=_actor(caller))
        guard = functools.partial(self._check_machine, caller, "ttl")
        return self._apply(machine_id, inp, guard=guard).machine

    def retry(self, machine_id: str, *, caller: str | None = None) -> Machine:
        """Re-run the failed tasks of the current state (NothingToRetry if none)."""
        validate_machine_id(machine_id)
        self._check(caller, "retry", machine_id)
        inp = Retry(source=API_SOURCE, actor=_actor(caller))
        guard = functools.partial(self._check_machine, caller, "retry")
        return self._apply(machine_id, inp, guard=guard).machine

    def handle_bus_event(self, source: str, detail_type: str, detail: Mapping[str, Any]) -> Outcome:
        """One event from the bus. Refused, stale and duplicate input is logged, counted
        and dropped (raising would make EventBridge retry what can never succeed); only
        a Conflict past its deadline or an infrastructure failure raises."""
        try:
            if not isinstance(detail, Mapping):
                raise InvalidRequest(f"detail must be a JSON object, got {type(detail).__name__}")
            if detail_type == "Machine Event":
                outcome = self._bus_machine_event(source, detail)
            elif detail_type == "Task Finished":
                outcome = self._bus_task_finished(source, detail)
            else:
                raise InvalidRequest(f"detail-type {detail_type!r} is not handled here")
        except Conflict:
            raise  # transient: the bus delivers it again later
        except ValidationError as exc:
            # Where and why only: pydantic's own text quotes the input, which may hold
            # metadata values or task outputs (never logged at INFO or above).
            log.warning(
                "refused %s from %s: invalid detail: %s", detail_type, source, _fields_of(exc)
            )
            outcome = Outcome.REFUSED
        except StatewrightError as exc:
            log.warning("refused %s from %s: %s (%s)", detail_type, source, exc.message, exc.code)
            outcome = Outcome.REFUSED
        self.metrics.count(f"events_{outcome.value}")
        return outcome

    def arm_schedules(self) -> None:
        """Arm the next fire of every served spec's schedules as a ``schedule`` timer
        (the local server on start; on AWS, Scheduler's recurring schedules fire them).
        Arming a timer that is armed already keeps one."""
        if self.timers is None:
            return
        first = schedules.first_timers(self.catalog.specs(), self.clock())
        if first:
            self.timers.arm(first)

    def fan_out_schedule(self, fire: ScheduleFire) -> str | None:
        """Send one page of a schedule fire to the machines it applies to; the token of
        the next page, or None when this was the last (docs/runtime.md#schedules). A
        fire of a schedule the served spec no longer has sends nothing."""
        spec = self.catalog.get(fire.spec)
        if spec is None or spec.schedule(fire.schedule) is None:
            log.warning(
                "schedule %s of spec %s fired, but no served spec has it; nothing sent",
                fire.schedule,
                fire.spec,
            )
            return None
        sent, token = fan_out_page(store=self.store, bus=self.bus, catalog=self.catalog, fire=fire)
        self.metrics.count("schedule_events", sent)
        return token

    def fire_timer(self, timer: Timer) -> Outcome:
        """A timer came due (docs/runtime.md, "Timers"): apply it to its machine. A
        timer whose guard no longer holds, or whose machine is gone, is ``stale`` and
        changes nothing. Only a Conflict past its deadline or an infrastructure failure
        raises (the adapter then fires it again later). A ``schedule`` timer (local
        only) sends its fire to the spec's machines (docs/runtime.md#schedules)."""
        if timer.purpose is TimerPurpose.SCHEDULE and self.timers is not None:
            outcome = schedules.fire_timer(
                timer,
                catalog=self.catalog,
                timers=self.timers,
                now=self.clock(),
                fan_out=self.fan_out_schedule,
            )
            self.metrics.count(f"timers_{outcome.value}")
            return outcome
        try:
            outcome = self._apply(timer.machine_id, TimerFired(timer)).decision.outcome
        except MachineNotFound:
            log.info("%s timer %s: machine %s is gone", timer.purpose, timer.name, timer.machine_id)
            outcome = Outcome.STALE
        except Conflict:
            raise
        except StatewrightError as exc:
            log.warning("refused timer %s: %s (%s)", timer.name, exc.message, exc.code)
            outcome = Outcome.REFUSED
        self.metrics.count(f"timers_{outcome.value}")
        return outcome

    def recover(
        self,
        *,
        restart_running: bool = False,
        pending_grace_seconds: float = 0.0,
        visit: Callable[[Machine], object] | None = None,
    ) -> RecoveryReport:
        """Start pending tasks that are due, re-publish the NEXT/FAILED of satisfied or
        failed states not yet applied, fail running tasks past their timeout.

        ``restart_running=True`` also restarts tasks recorded as running: the local
        server passes it on start, since its task runs died with the previous process.
        The AWS reconciler leaves it False (CodeBuild and Lambda runs outlive it) and
        passes a ``pending_grace_seconds`` so it does not race a start in flight.

        Only machines with work are read (the stores' sparse due index,
        statewright.due): those due by now, or with ``restart_running`` every one of
        them (a pending retry is restarted with the rest of its backoff). Idle machines
        cost nothing, however many there are. ``visit`` sees each machine as its repair
        left it (the AWS reconciler finds its running builds in the same pass)."""
        report = RecoveryReport()
        inp = Reconcile(
            restart_running=restart_running, pending_grace_seconds=pending_grace_seconds
        )
        until = None if restart_running else self.clock()
        with self._counting_unreadable():
            for machine in self.store.due_machines(until=until):
                report.machines_scanned += 1
                self.isolated(
                    machine.id, report.errors, self._recover_one, machine, inp, report, visit
                )
        return report

    def isolated(
        self,
        machine_id: str,
        errors: list[str],
        work: Callable[..., object],
        *args: Any,
    ) -> None:
        """``work(*args)`` for one machine of a reconciler run, which goes on whatever
        happens to this one machine.

        The broad ``except`` is deliberate and stays here alone: a run repairs many
        machines, each through the store, a spec, an executor and the bus, and any of
        them can fail in ways no list would foresee (a corrupt item, an SDK error, a bug
        met by one machine's data). Letting one such machine end the run would leave
        every machine after it unrepaired, run after run. It is logged with the
        machine id and its trace, counted (``recovery_errors``) and listed in ``errors``."""
        try:
            work(*args)
        except MachineNotFound:
            return  # deleted since the page was read: nothing to recover
        except Exception as exc:  # the isolation boundary, see above
            errors.append(f"{machine_id}: {type(exc).__name__}: {exc}")
            log.exception("cannot recover machine %s; going on with the others", machine_id)
            self.metrics.count("recovery_errors")

    # ---- internals: commands ----------------------------------------------------------

    def _recover_one(
        self,
        machine: Machine,
        inp: Reconcile,
        report: RecoveryReport,
        visit: Callable[[Machine], object] | None,
    ) -> None:
        """Repair one machine; ``visit`` then sees it as the repair left it."""
        applied = self._repair(machine, inp, report)
        if visit is not None:
            visit(applied.machine if applied is not None else machine)

    def _repair(self, machine: Machine, inp: Reconcile, report: RecoveryReport) -> _Applied | None:
        if machine.status == "waiting" and not machine.expire_pending:
            return None  # satisfied with nothing in flight: nothing can have been lost
        spec = self.catalog.resolve(machine.spec_digest, self.store)
        preview = engine.decide(machine, spec, inp, self.clock())
        if preview.machine is None and not preview.effects:
            return None  # the common case costs no write
        applied = self._apply(machine.id, inp)
        report.machines_repaired += 1
        effects = applied.decision.effects
        report.tasks_started += sum(isinstance(e, StartTask) for e in effects)
        report.events_published += sum(
            isinstance(e, Publish) and e.event.detail.get("event") in SYSTEM_EVENTS for e in effects
        )
        report.tasks_timed_out += sum(
            h.kind == "task_finished" and h.status == "failed" for h in applied.decision.history
        )
        return applied

    def _send_event(
        self,
        machine_id: str,
        inp: ExternalEvent,
        spec: str | None,
        caller: str | None,
        *,
        ttl: int | None = None,
    ) -> Machine:
        validate_machine_id(machine_id)
        self._check(caller, "send", machine_id, spec=spec, event=inp.event)
        guard = functools.partial(self._check_machine, caller, "send", event=inp.event)
        if spec is None:
            return self._apply(machine_id, inp, guard=guard).machine
        spec_obj = self._spec_to_create(spec)
        apply = functools.partial(self._apply, machine_id, inp, spec_name=spec, guard=guard)
        try:
            # The common case (the machine exists) costs one read, as without spec.
            return apply(caller=caller).machine
        except MachineNotFound:
            self._check(caller, "create", machine_id, spec=spec)
            created = self._create_with_event(spec_obj, machine_id, inp, ttl)
        if created is not None:
            return created
        return apply(caller=caller).machine  # created meanwhile

    def _create_with_event(
        self, spec: Spec, machine_id: str, inp: ExternalEvent, ttl: int | None
    ) -> Machine | None:
        """Create and apply the first event in one write; None when another request
        created the machine first (the caller then applies the event to it)."""
        now = self.clock()
        create = Create(machine_id, source=inp.source, actor=inp.actor, ttl=ttl)
        created = engine.create(spec, create, now)
        if created.deleted or created.machine is None:
            return self._store_new(spec, created)
        then = engine.decide(created.machine, spec, inp, now)
        combined = Decision(
            outcome=then.outcome,
            machine=then.machine or created.machine,
            effects=created.effects + then.effects,
            history=created.history + then.history,
        )
        try:
            return self._store_new(spec, combined)
        except MachineExists:
            return None

    def _store_new(self, spec: Spec, decision: Decision) -> Machine:
        machine = decision.machine
        assert machine is not None  # engine.create always yields the new machine
        self.catalog.remember(spec, self.store)
        if not decision.deleted:
            try:
                self.store.create(machine, decision.history)
            except ItemTooLarge as exc:
                raise _metadata_too_large(exc) from exc
        self.metrics.count("machines_created")
        self._count(decision)
        latest = self._run_effects(decision, None if decision.deleted else machine)
        return latest if latest is not None else machine

    def _apply(  # noqa: PLR0913 — keyword-only options of one write (spec check, seed, guard, caller)
        self,
        machine_id: str,
        inp: engine.Input,
        *,
        spec_name: str | None = None,
        seed: Machine | None = None,
        guard: Callable[[Machine], None] | None = None,
        caller: str | None = None,
    ) -> _Applied:
        """Decide and write ``inp`` on the machine, then run the effects. With
        ``spec_name``, a machine of another spec is refused (MachineExists; its spec
        named only to a ``caller`` who may read it); ``seed`` is the machine as this
        service just wrote it (Store.mutate's first read saved). ``guard`` refuses the
        machine as read (the access rules' check of its spec), inside the conditional
        write."""
        calls = 0

        def decide(current: Machine) -> Write[_Applied]:
            nonlocal calls
            calls += 1
            if spec_name is not None and current.spec != spec_name:
                message = f"machine {machine_id} already exists"
                if self._may_read(caller, current):
                    message += (
                        f" and runs spec {current.spec}, not {spec_name}; send the event "
                        f"without spec, or with spec {current.spec}"
                    )
                raise MachineExists(message)
            if guard is not None:
                guard(current)
            spec = self.catalog.resolve(current.spec_digest, self.store)
            decision = engine.decide(current, spec, inp, self.clock())
            after = current
            if decision.machine is not None:
                after = decision.machine.model_copy(update={"version": current.version + 1})
            return Write(
                result=_Applied(decision, after),
                machine=decision.machine,
                history=decision.history,
                delete=decision.deleted,
            )

        try:
            applied = self.store.mutate(machine_id, decide, seed=seed)
        except ItemTooLarge as exc:
            if isinstance(inp, TaskFinished) and inp.detail.status == "succeeded":
                # The store's backstop: the output does not fit; fail the attempt instead.
                return self._apply(machine_id, _output_too_large(inp.detail, exc), guard=guard)
            raise _metadata_too_large(exc) from exc
        finally:
            if calls > 1:
                self.metrics.count("conflicts", calls - 1)
        decision = applied.decision
        if decision.outcome is not Outcome.APPLIED:
            log.info("%s input for machine %s: %s", decision.outcome, machine_id, decision.reason)
        self._count(decision)
        latest = self._run_effects(decision, None if decision.deleted else applied.machine)
        return applied if latest is None else _Applied(decision, latest)

    def _count(self, decision: Decision) -> None:
        transitions = sum(h.kind == "transition" for h in decision.history)
        failures = sum(h.kind == "task_finished" and h.status == "failed" for h in decision.history)
        if transitions:
            self.metrics.count("transitions", transitions)
        if failures:
            self.metrics.count("task_failures", failures)
        if decision.deleted:
            self.metrics.count("machines_deleted")

    # ---- internals: effects -----------------------------------------------------------

    def _run_effects(self, decision: Decision, stored: Machine | None) -> Machine | None:
        """Cancel, start, publish, arm and disarm timers; then record the started runs
        (pending -> running) in a follow-up conditional write on the machine just
        written. Returns the machine as last written (None when it is gone or unknown)."""
        reports: list[StartReport] = []
        publishes: list[BusEvent] = []
        for effect in decision.effects:
            if isinstance(effect, CancelTask):
                self._cancel(effect)
            elif isinstance(effect, StartTask):
                started = self._start(effect.invocation)
                if started is not None:
                    reports.append(started)
            elif isinstance(effect, Publish):
                publishes.append(effect.event)
        if publishes:
            self.bus.publish(publishes)
        self._run_timer_effects(decision)
        if reports:
            return self._record_starts(decision, stored, reports)
        return stored

    def _run_timer_effects(self, decision: Decision) -> None:
        """Disarm, then arm, the decision's timers (each kind in one call)."""
        if self.timers is None:
            return
        disarm = [e.name for e in decision.effects if isinstance(e, DisarmTimer)]
        arm = [e.timer for e in decision.effects if isinstance(e, ArmTimer)]
        if disarm:
            self.timers.disarm(disarm)
        if arm:
            self.timers.arm(arm)

    def _start(self, inv: TaskInvocation) -> StartReport | None:
        executor = self.executors.get(inv.task_spec.executor)
        report = functools.partial(StartReport, inv.task, inv.epoch, inv.attempt)
        if executor is None:
            available = ", ".join(sorted(self.executors)) or "none"
            return report(
                error=f"no {inv.task_spec.executor!r} executor is configured in this control "
                f"plane; available: {available}",
            )
        try:
            inv = resolve_invocation(inv)
        except UnresolvedReference as exc:
            # Resolved at start, in every mode; the same attempt would fail the same way,
            # so the engine does not retry it.
            return report(error=str(exc), error_type=REFERENCE_ERROR)
        if self.report_tokens is not None:
            inv = self.report_tokens.sign(inv)
        try:
            run_id = executor.start(inv)
        except StartDeferred as exc:
            log.warning(
                "task %s of machine %s did not start yet (the reconciler will retry): %s",
                inv.task,
                inv.machine_id,
                exc,
            )
            return None
        except (StatewrightError, ConfigurationError, OSError) as exc:
            # The executor could not start this attempt (missing binary, bad source...):
            # the attempt fails like a task failure, with the executor's explanation.
            log.warning("task %s of machine %s could not start: %s", inv.task, inv.machine_id, exc)
            return report(error=str(exc))
        return report(run_id=run_id)

    def _cancel(self, effect: CancelTask) -> None:
        executor = self.executors.get(effect.executor)
        if executor is None:
            return
        try:
            executor.cancel(effect.run_id)
        except (StatewrightError, ConfigurationError, OSError) as exc:
            # Cancelling is best effort: a late result of the old epoch is stale anyway.
            log.warning("could not cancel run %s of %s: %s", effect.run_id, effect.task, exc)

    def _record_starts(
        self, decision: Decision, stored: Machine | None, reports: Sequence[StartReport]
    ) -> Machine | None:
        machine_id = _machine_id_of(decision)
        if machine_id is None:
            return stored
        try:
            # Seeded with the machine just written: while it is still current, recording
            # the starts costs one conditional write and no read.
            return self._apply(machine_id, TasksStarted(tuple(reports)), seed=stored).machine
        except MachineNotFound:
            log.info("machine %s was deleted while its tasks started", machine_id)
            return None

    # ---- internals: bus ---------------------------------------------------------------

    def _bus_machine_event(self, source: str, detail: Mapping[str, Any]) -> Outcome:
        if "schedule" in detail:
            return self._bus_scheduled_event(source, detail)
        machine_id = _text(detail, "machine_id", "stackId")
        event = _text(detail, "event", "action")
        spec = detail.get("spec") or detail.get("machine")
        if spec is not None and not isinstance(spec, str):
            raise InvalidRequest("spec (or machine) must be a spec name")
        if source == EVENT_SOURCE and detail.get("reason") == expiry.EXPIRY:
            validate_machine_id(machine_id)
            expire = ExpireEvent(event, _epoch(detail, event))
            return self._apply(machine_id, expire).decision.outcome
        if event in SYSTEM_EVENTS:
            if source != EVENT_SOURCE:
                raise InvalidRequest(
                    f"{event} from source {source!r} refused: only {EVENT_SOURCE} sends it"
                )
            validate_machine_id(machine_id)
            return self._apply(
                machine_id, InternalEvent(event, _epoch(detail, event))
            ).decision.outcome
        actor = f"bus:{source}"
        inp = ExternalEvent(event, detail.get("metadata"), source=actor, actor=actor)
        ttl = detail.get("ttl")
        seconds = expiry.parse_ttl(ttl, "detail.ttl") if ttl is not None else None
        self._send_event(machine_id, inp, spec, None, ttl=seconds)
        return Outcome.APPLIED

    def _bus_scheduled_event(self, source: str, detail: Mapping[str, Any]) -> Outcome:
        """One fire of a spec schedule for one machine (statewright.schedules)."""
        if source != EVENT_SOURCE:
            raise InvalidRequest(
                f"a schedule's Machine Event from source {source!r} refused: only "
                f"{EVENT_SOURCE} sends those"
            )
        machine_id = _text(detail, "machine_id")
        validate_machine_id(machine_id)
        schedule = _text(detail, "schedule")
        try:
            fire = fire_time(_text(detail, "fire"))
        except ValueError as exc:
            raise InvalidRequest(f"detail.fire: {exc}") from exc
        try:
            applied = self._apply(machine_id, ScheduledEvent(schedule, fire))
        except MachineNotFound:
            # Deleted since its page was listed: nothing left to reach.
            return Outcome.STALE
        return applied.decision.outcome

    def _bus_task_finished(self, source: str, detail: Mapping[str, Any]) -> Outcome:
        if source != EVENT_SOURCE:
            raise InvalidRequest(
                f"Task Finished from source {source!r} refused: only {EVENT_SOURCE} sends it"
            )
        parsed = TaskFinishedDetail.model_validate(dict(detail))
        validate_machine_id(parsed.machine_id)
        tokens = self.report_tokens
        # Checked on the machine as read for the write: the incarnation it is signed for.
        guard = None if tokens is None else functools.partial(tokens.check, parsed)
        return self._apply(parsed.machine_id, TaskFinished(parsed), guard=guard).decision.outcome

    # ---- internals: access ------------------------------------------------------------

    def _check(
        self,
        caller: str | None,
        action: Action,
        machine_id: str,
        *,
        spec: str | None = None,
        event: str | None = None,
    ) -> None:
        """Before any read: Forbidden unless some rule could allow the request (for the
        machine's spec, whichever it turns out to be, when the request names none). The
        answer depends on the request alone, so it tells nothing about the machine."""
        access = self.access
        if access is None or caller is None:
            return
        if not access.could_allow(caller, action, machine_id=machine_id, event=event, spec=spec):
            raise Forbidden(_refusal(caller, action, machine_id, spec=spec, event=event))

    def _check_machine(
        self, caller: str | None, action: Action, machine: Machine, event: str | None = None
    ) -> None:
        """After the read: the rules must allow the machine's own spec too. A caller who
        may not even read the machine gets the answer a missing machine gets, so a
        refusal never tells that a machine exists."""
        access = self.access
        if access is None or caller is None:
            return
        if access.allows(caller, action, spec=machine.spec, machine_id=machine.id, event=event):
            return
        if self._may_read(caller, machine):
            raise Forbidden(_refusal(caller, action, machine.id, spec=machine.spec, event=event))
        raise MachineNotFound.of(machine.id)

    def _may_read(self, caller: str | None, machine: Machine) -> bool:
        access = self.access
        return (
            access is None
            or caller is None
            or access.allows(caller, "read", spec=machine.spec, machine_id=machine.id)
        )

    # ---- internals: misc --------------------------------------------------------------

    def _spec_to_create(self, name: str) -> Spec:
        spec = self.catalog.get(name)
        if spec is None:
            raise UnknownSpec(f"no spec named {name!r}; loaded specs: {self._spec_names()}")
        return spec

    def _spec_names(self) -> str:
        return ", ".join(self.catalog.names()) or "none"


def _fields_of(exc: ValidationError) -> str:
    """Each invalid field with pydantic's error type, without the input values."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'detail'}: {err['type']}"
        for err in exc.errors(include_input=False)
    )


def _actor(caller: str | None) -> str:
    return caller if caller is not None else LOCAL_PRINCIPAL


def _refusal(
    caller: str, action: Action, machine_id: str, *, spec: str | None, event: str | None
) -> str:
    """The 403 message: the principal, the action and the target (as far as the request
    named it, or the machine's spec where the caller may read the machine)."""
    if action == "send":
        what = f"send {event} to machine {machine_id}"
    else:
        what = f"{action} machine {machine_id}"
    of_spec = f" of spec {spec}" if spec is not None else ""
    return f"{caller} may not {what}{of_spec}: no access rule allows it"


def _metadata_too_large(exc: ItemTooLarge) -> MetadataTooLarge:
    return MetadataTooLarge(
        f"{exc}: the machine's metadata and its task outputs together do not fit; send "
        "fewer or shorter metadata values"
    )


def _output_too_large(detail: TaskFinishedDetail, exc: ItemTooLarge) -> TaskFinished:
    return TaskFinished(
        detail.model_copy(
            update={
                "status": "failed",
                "output": None,
                "error": f"the output of task {detail.task} does not fit in the store ({exc}); "
                "return less, or store it elsewhere and return where",
                "error_type": OUTPUT_TOO_LARGE,
            }
        )
    )


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")


def _new_id() -> str:
    return uuid.uuid4().hex


def _text(detail: Mapping[str, Any], key: str, alias: str | None = None) -> str:
    value = detail.get(key, detail.get(alias) if alias else None)
    if not isinstance(value, str) or not value:
        named = f"detail.{key} (or {alias})" if alias else f"detail.{key}"
        raise InvalidRequest(f"{named} must be a non-empty string")
    return value


def _epoch(detail: Mapping[str, Any], event: str) -> int:
    epoch = detail.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise InvalidRequest(f"{event} needs an integer epoch")
    return epoch


def _machine_id_of(decision: Decision) -> str | None:
    for effect in decision.effects:
        if isinstance(effect, StartTask):
            return effect.invocation.machine_id
    return decision.machine.id if decision.machine is not None else None
