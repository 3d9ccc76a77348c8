"""The hypothesis state machine that drives a real Service (over a real store) and the
reference model side by side, and checks after every step that they agree.

Rules: create machines, send external events (API or bus, with and without ``spec``),
finish task runs (succeeded or failed, into the bus's pool), deliver pool events in any
order, deliver some again, lose NEXT/FAILED events, retry, recover — each step possibly
crashing at any port call between its conditional write and its last effect — and two
requests interleaved inside one conditional write's window (a real version conflict).

What "agree" means:

- after every step, every machine the model knows is stored exactly as the model says
  (state, previous state, epoch, status, metadata, task records) and its history holds
  exactly the model's entries, numbered 1..n with no gap or repeat; machines the model
  deleted are gone;
- a step that did not crash answered what the model says (applied, stale, duplicate,
  refused, or the API's error code), published exactly the NEXT/FAILED the model says
  and started exactly the task attempts the model schedules — no more (a doubled
  transition or task) and no fewer (a lost one);
- a crash before the conditional write leaves the machine as it was; a crash after it
  leaves the machine as the input left it, and a bus event that crashed is delivered
  again (EventBridge retries a failed invocation);
- after recovery, every active task of every machine has its run started and every
  satisfied (or failed) state has its NEXT (or FAILED) on the bus;
- at the end, recovery plus delivering everything brings every machine to rest
  (waiting, failed or deleted) in the state the model says: nothing was lost.

On ids: the rules never create a machine under the id of a deleted one on purpose. A
machine created again under an old id runs the same epochs, tasks and attempts as its
predecessor, and a late ``Task Finished`` of the predecessor's (a Lambda run cannot be
stopped) names the same machine, epoch, task and attempt — the service cannot tell it
from the new machine's own result, and neither can this model (docs/reliability.md,
what is left open). A redelivered ``LAUNCH`` with ``spec`` still re-creates an aborted
machine now and then, as it would on EventBridge; that is how this suite found that
such a machine's task starts were taken for repeats of its predecessor's.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from statewright.catalog import SpecCatalog
from statewright.errors import StatewrightError
from statewright.ports import Bus, Executor, Store
from statewright.service import Service

from tests.reliability.model import reference
from tests.reliability.model.lifecycle import DOCUMENT, EVENTS_TRIED, NAME, SPEC
from tests.reliability.model.reference import Model, Step
from tests.reliability.model.world import (
    Delivery,
    FakeExecutor,
    Faults,
    NetworkBus,
    Runs,
    SimulatedCrash,
    instrument,
    project,
    start_key,
    stored_history,
)

MAX_LIVE = 4
USER_SOURCE = "my.app"

# About half the steps crash, at one of the first dozen port-call boundaries.
crash_points = st.sampled_from([None] * 12 + list(range(12)))
metadata = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-3, 3),
            st.sampled_from([0.5, -2.25]),
            st.text("xyz", max_size=3),
        ),
        max_size=2,
    ),
    st.sampled_from([{"a": {"nested": 1}}, {"b": [1]}, {"c": float("nan")}, ["not", "a", "map"]]),
)
picks = st.integers(0, 1_000)


class Figures(Counter[str]):
    """What the runs of one test did, summed for tests.reliability.figures.record."""


class LifecycleMachine(RuleBasedStateMachine):
    """Subclasses set ``open_store`` (a fresh store and its closer) and ``local`` (the
    recovery flavour: the local server's restart_running, or the AWS reconciler's)."""

    open_store: ClassVar[Callable[[], tuple[Store, Callable[[], None]]]]
    local: ClassVar[bool]
    figures: ClassVar[Figures]

    def __init__(self) -> None:
        super().__init__()
        self.faults = Faults()
        store, self._close = type(self).open_store()
        self.store = instrument(store, self.faults)
        self.runs = Runs()
        self.bus = NetworkBus(self.faults)
        bus: Bus = self.bus
        executors: dict[str, Executor] = {
            name: FakeExecutor(name, self.runs, self.faults) for name in ("lambda", "terraform")
        }
        self.service = Service(
            store=self.store, bus=bus, executors=executors, catalog=SpecCatalog([SPEC])
        )
        self.model = Model(DOCUMENT)
        self.ids: list[str] = []
        self.delivered: list[Delivery] = []
        self.fresh = (f"m-{n}" for n in itertools.count(1))
        self.outputs = itertools.count(1)
        self.healthy = True
        self.figures_lost = 0
        self.losses_recovered = 0
        self.figures["interleavings"] += 1

    # ---- running one input under a fault plan ------------------------------------------

    def _run(
        self,
        crash_at: int | None,
        call: Callable[[], str],
        predict: Callable[[], Step],
        *,
        delivery: Delivery | None = None,
        bus: bool = False,
    ) -> None:
        """``call`` runs the input on the service and answers its outcome or error code;
        ``predict`` applies it to the model."""
        before = copy.deepcopy(self.model)
        self.bus.step_system, self.runs.step_new = [], []
        self.faults.begin(crash_at)
        answer: str | None = None
        try:
            answer = call()
        except SimulatedCrash:
            answer = None
        finally:
            self.faults.end()
        step = predict()
        self.figures["events"] += 1
        if answer is None:  # crashed
            if not step.writes:
                assert not self.faults.commits, (self.faults.crashed_at, self.faults.commits)
            elif not self.faults.commits:
                self.model = before  # the process died before its write: nothing happened
            if delivery is not None:
                self.bus.pool.append(delivery)  # the invocation failed: EventBridge retries
            assert Counter(self.bus.step_system) <= Counter(step.publishes)
            assert Counter(self.runs.step_new) <= Counter(step.schedules)
            return
        expected = step.outcome
        if bus and expected not in (reference.APPLIED, reference.STALE, reference.DUPLICATE):
            expected = reference.REFUSED
        assert answer == expected, f"service answered {answer}, the model says {expected}"
        assert bool(self.faults.commits) == step.writes, (self.faults.commits, step)
        assert sorted(self.bus.step_system) == sorted(step.publishes), (
            "NEXT/FAILED published",
            self.bus.step_system,
            step.publishes,
        )
        assert sorted(self.runs.step_new) == sorted(step.schedules), (
            "task attempts started",
            self.runs.step_new,
            step.schedules,
        )

    def _api(self, fn: Callable[[], object]) -> Callable[[], str]:
        def call() -> str:
            try:
                fn()
            except StatewrightError as exc:
                return exc.code
            return reference.APPLIED

        return call

    def _bus(self, delivery: Delivery) -> Callable[[], str]:
        source, detail_type, detail = delivery
        return lambda: self.service.handle_bus_event(source, detail_type, detail).value

    def _predict_delivery(self, delivery: Delivery) -> Callable[[], Step]:
        source, detail_type, d = delivery
        if detail_type == "Task Finished":
            return lambda: self.model.task_finished(
                d["machine_id"], d["task"], d["epoch"], d["attempt"], d["status"], d.get("output")
            )
        if d["event"] in reference.SYSTEM_EVENTS and source == "statewright":
            return lambda: self.model.system(d["machine_id"], d["event"], d["epoch"])
        return lambda: self.model.external(
            d["machine_id"], d["event"], d.get("metadata"), d.get("spec")
        )

    def _pick_id(self, pick: int, fresh: bool) -> str:
        live = list(self.model.machines)
        if fresh or not self.ids:
            # Never an id used before (see the module doc, on ids).
            return next(self.fresh) if len(live) < MAX_LIVE or not live else live[0]
        return self.ids[pick % len(self.ids)]

    def _accepted(self, machine_id: str, pick: int) -> str:
        """An external event the machine's state has a handler for (LAUNCH if none)."""
        m = self.model.machines.get(machine_id)
        on = DOCUMENT["states"][m.state if m else "INIT"].get("on", {})
        accepted = [e for e in on if e not in reference.SYSTEM_EVENTS] or ["LAUNCH"]
        return accepted[pick % len(accepted)]

    def _note(self, machine_id: str) -> None:
        if machine_id not in self.ids:
            self.ids.append(machine_id)

    # ---- rules -------------------------------------------------------------------------

    @rule(pick=picks, fresh=st.booleans(), meta=metadata, crash=crash_points)
    def create(self, pick: int, fresh: bool, meta: Any, crash: int | None) -> None:
        self.healthy = False
        live = list(self.model.machines)
        # An id in use (machine_exists), or a new one; never a deleted one (module doc).
        machine_id = live[pick % len(live)] if live and not fresh else self._pick_id(pick, True)
        self._note(machine_id)
        self._run(
            crash,
            self._api(lambda: self.service.create_machine(NAME, machine_id, meta)),
            lambda: self.model.create(machine_id, meta),
        )
        self.healthy = True

    @rule(
        pick=picks,
        fresh=st.booleans(),
        event=st.one_of(st.sampled_from(EVENTS_TRIED), picks),
        meta=metadata,
        via_bus=st.booleans(),
        with_spec=st.booleans(),
        crash=crash_points,
    )
    def send(
        self,
        pick: int,
        fresh: bool,
        event: str | int,
        meta: Any,
        via_bus: bool,
        with_spec: bool,
        crash: int | None,
    ) -> None:
        """An external event: any name tried, or (a number) one the state accepts."""
        self.healthy = False
        machine_id = self._pick_id(pick, fresh)
        if isinstance(event, int):
            event = self._accepted(machine_id, event)
        if with_spec and machine_id not in self.model.machines and machine_id in self.ids:
            with_spec = False  # a deleted id is never created again (see the module doc)
        self._note(machine_id)
        spec = NAME if with_spec else None
        predict = lambda: self.model.external(machine_id, event, meta, spec)  # noqa: E731
        if via_bus:
            detail: dict[str, Any] = {"machine_id": machine_id, "event": event}
            if meta is not None:
                detail["metadata"] = meta
            if spec:
                detail["spec"] = spec
            delivery = (USER_SOURCE, "Machine Event", detail)
            self._run(crash, self._bus(delivery), predict, delivery=delivery, bus=True)
        else:
            call = self._api(lambda: self.service.send_event(machine_id, event, meta, spec))
            self._run(crash, call, predict)
        self.healthy = True

    @precondition(lambda self: bool(self.runs.order))
    @rule(
        pick=picks,
        current=st.booleans(),
        failed=st.booleans(),
        now=st.booleans(),
        crash=crash_points,
    )
    def finish_run(
        self, pick: int, current: bool, failed: bool, now: bool, crash: int | None
    ) -> None:
        """A run reports: any run ever started, or (``current``) one of an active task;
        ``now`` delivers the report at once, else it joins the pool."""
        self.healthy = False
        keys = [k for k in self.runs.order if k in self._active_keys()] if current else []
        keys = keys or self.runs.order
        key = keys[pick % len(keys)]
        status = "failed" if failed else "succeeded"
        delivery = self.runs.report(key, status, {"n": next(self.outputs)})
        if now:
            self._deliver(delivery, crash)
        else:
            self.bus.pool.append(delivery)
        self.healthy = True

    @precondition(lambda self: bool(self.bus.pool))
    @rule(pick=picks, crash=crash_points)
    def deliver(self, pick: int, crash: int | None) -> None:
        self.healthy = False
        self._deliver(self.bus.pool.pop(pick % len(self.bus.pool)), crash)
        self.healthy = True

    @precondition(lambda self: bool(self.delivered))
    @rule(pick=picks, crash=crash_points)
    def deliver_again(self, pick: int, crash: int | None) -> None:
        self.healthy = False
        self.figures["duplicates_delivered"] += 1
        self._deliver(self.delivered[pick % len(self.delivered)], crash)
        self.healthy = True

    @precondition(lambda self: any(d[1] == "Machine Event" for d in self.bus.pool))
    @rule(pick=picks)
    def lose(self, pick: int) -> None:
        """A NEXT/FAILED never reaches the dispatcher (only recovery brings it back)."""
        system = [i for i, d in enumerate(self.bus.pool) if d[1] == "Machine Event"]
        self.bus.pool.pop(system[pick % len(system)])
        self.figures["events_lost"] += 1
        self.figures_lost += 1

    @precondition(lambda self: bool(self.ids))
    @rule(pick=picks, crash=crash_points)
    def retry(self, pick: int, crash: int | None) -> None:
        self.healthy = False
        machine_id = self.ids[pick % len(self.ids)]
        self._run(
            crash,
            self._api(lambda: self.service.retry(machine_id)),
            lambda: self.model.retry(machine_id),
        )
        self.healthy = True

    @precondition(lambda self: bool(self.model.machines))
    @rule(
        pick=picks,
        outer=st.one_of(picks, st.sampled_from(EVENTS_TRIED)),
        inner=st.one_of(picks, st.sampled_from(EVENTS_TRIED)),
        inner_from_pool=st.booleans(),
    )
    def interleave(
        self, pick: int, outer: str | int, inner: str | int, inner_from_pool: bool
    ) -> None:
        """Two requests on one machine, the second landing between the first's decision
        and its conditional write: the write conflicts, the first re-reads and decides
        again. Serially that is 'second, then first'."""
        self.healthy = False
        live = list(self.model.machines)
        machine_id = live[pick % len(live)]
        if isinstance(outer, int):
            outer = self._accepted(machine_id, outer)
        if isinstance(inner, int):
            inner = self._accepted(machine_id, inner)
        if inner_from_pool and self.bus.pool:
            inner_delivery = self.bus.pool.pop(pick % len(self.bus.pool))
        else:
            inner_delivery = (
                USER_SOURCE,
                "Machine Event",
                {"machine_id": machine_id, "event": inner},
            )
        inner_answer: list[str] = []
        first_writes = self.model.would_write("external", machine_id, outer)
        conflicts = self.store.conflicts
        self.faults.interloper = lambda: inner_answer.append(self._bus(inner_delivery)())
        self.bus.step_system, self.runs.step_new = [], []
        self.faults.begin()
        try:
            outer_answer = self._api(lambda: self.service.send_event(machine_id, outer))()
        finally:
            self.faults.interloper = None
        fired = bool(inner_answer)
        assert fired == first_writes, "the interloper runs exactly when the request writes"
        if not fired:
            inner_answer.append(self._bus(inner_delivery)())
        predict_inner = self._predict_delivery(inner_delivery)
        if fired:
            inner_step, outer_step = predict_inner(), self.model.external(machine_id, outer)
        else:
            outer_step, inner_step = self.model.external(machine_id, outer), predict_inner()
        assert outer_answer == outer_step.outcome
        expected_inner = inner_step.outcome
        if expected_inner not in (reference.APPLIED, reference.STALE, reference.DUPLICATE):
            expected_inner = reference.REFUSED
        assert inner_answer == [expected_inner]
        assert sorted(self.bus.step_system) == sorted(outer_step.publishes + inner_step.publishes)
        assert sorted(self.runs.step_new) == sorted(outer_step.schedules + inner_step.schedules)
        self.delivered.append(inner_delivery)
        self.figures["events"] += 2
        self.figures["conflicts"] += self.store.conflicts - conflicts
        self.healthy = True

    @precondition(lambda self: self.needs_recovery())
    @rule(crash=crash_points)
    def recover(self, crash: int | None) -> None:
        self.healthy = False
        self.losses_recovered = self.losses()
        self.bus.step_system, self.runs.step_new = [], []
        self.faults.begin(crash)
        try:
            report = self._recover()
        except SimulatedCrash:
            report = None
        finally:
            self.faults.end()
        self.figures["recoveries"] += 1
        if report is not None:
            self.figures["machines_recovered"] += report.machines_repaired
            assert sorted(self.bus.step_system) == sorted(self.model.recovery_publishes())
            self._check_runs_started()
        self.healthy = True

    def losses(self) -> int:
        return self.faults.crashes + self.figures_lost

    def needs_recovery(self) -> bool:
        """Recovery runs after a crash or a lost event (elsewhere it has nothing to do;
        the drain at the end runs it regardless)."""
        return self.losses() > self.losses_recovered

    # ---- checks ------------------------------------------------------------------------

    def _deliver(self, delivery: Delivery, crash: int | None) -> None:
        self.delivered.append(delivery)
        self._run(
            crash,
            self._bus(delivery),
            self._predict_delivery(delivery),
            delivery=delivery,
            bus=True,
        )

    def _recover(self) -> Any:
        if self.local:
            return self.service.recover(restart_running=True)
        return self.service.recover(pending_grace_seconds=0.0)

    def _active_keys(self) -> set[str]:
        """Start keys of the attempts the model says are active."""
        keys = set()
        for m in self.model.machines.values():
            stored = self.store.get(m.id)
            assert stored is not None, m.id
            for name, task in m.tasks.items():
                if task.epoch == m.epoch and task.status == reference.ACTIVE:
                    keys.add(start_key(stored, name, task.epoch, task.attempt))
        return keys

    def _check_runs_started(self) -> None:
        for key in self._active_keys():
            assert self.runs.started(key), f"{key} is active but was never started"

    @invariant()
    def stored_machines_equal_the_model(self) -> None:
        for machine_id in self.ids:
            stored = self.store.get(machine_id)
            expected = self.model.machines.get(machine_id)
            if expected is None:
                assert stored is None, f"{machine_id} should be deleted: {stored}"
                continue
            assert stored is not None, f"{machine_id} is missing; the model has {expected}"
            assert project(stored) == expected.view(), machine_id
            assert stored_history(self.store, machine_id) == expected.history, machine_id
        self.figures["steps"] += 1

    def teardown(self) -> None:
        try:
            if self.healthy:
                self._drain()
        finally:
            self.figures["conflicts_total"] += self.store.conflicts
            self.figures["crashes"] += self.faults.crashes
            self.figures["starts_repeated"] += self.runs.repeats
            self.figures["transitions"] += self.model.transitions
            self._close()

    def _drain(self) -> None:
        """Recovery, then deliver and finish everything, until nothing moves."""
        for _ in range(40):
            report = self._recover()
            self.figures["recoveries"] += 1
            self.figures["machines_recovered"] += report.machines_repaired
            moved = False
            while self.bus.pool:
                self._deliver(self.bus.pool.pop(0), None)
                moved = True
            for key in sorted(self._active_keys()):
                if self.runs.started(key):
                    self._deliver(self.runs.report(key, "succeeded", {"n": 0}), None)
                    moved = True
            self.stored_machines_equal_the_model()
            if not moved:
                break
        for m in self.model.machines.values():
            assert m.status in ("waiting", "failed"), f"{m.id} never came to rest: {m}"
