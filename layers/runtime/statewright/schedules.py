"""Spec schedules at run time (docs/runtime.md#schedules): a fire of a schedule sends
its event to every machine of the spec it applies to, one page of machines at a time.

One fire is handled in pages: each page lists up to ``FAN_OUT_PAGE`` machines of the
spec through the store's listing by spec (the ``by_spec`` index on AWS) and publishes
an internal ``Machine Event`` to each machine the schedule applies to; the page's signed
token says where the next page starts. Locally the timer thread runs every page of a
fire in turn; on AWS each dispatcher invocation runs pages while it has time and hands
the token to a follow-up invocation of itself.

Each machine gets the event as its own input (engine.ScheduledEvent), which skips a
machine that has moved to a state the schedule does not apply to, and applies a fire at
most once per machine (Machine.schedule_fires), so a page published twice after a retry
reaches no machine twice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, field_validator

from statewright import engine
from statewright.catalog import SpecCatalog
from statewright.cron import next_fire
from statewright.engine import Outcome, schedule_actor
from statewright.model import BusEvent, Machine
from statewright.ports import Bus, Store, Timers
from statewright.spec.models import Schedule, Spec
from statewright.timers import Timer, TimerPurpose

log = logging.getLogger(__name__)

# What a schedule's target input is keyed by (the dispatcher tells a schedule fire by it).
TARGET_KEY: Final = "statewright_schedule"
# Machines listed per page of a fan-out (the store may end a page earlier by size).
FAN_OUT_PAGE: Final = 100
# A fire found later than this when it is handled was missed (nothing was running at
# its time) and is skipped, as EventBridge Scheduler skips missed fires.
LATE_SECONDS: Final = 60


class ScheduleFire(BaseModel):
    """One fire of one spec schedule, and where its fan-out continues (``after``: a page
    token signed by the store; None for the first page)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: str
    schedule: str
    fire: str
    after: str | None = None

    @field_validator("fire")
    @classmethod
    def _engine_time(cls, value: str) -> str:
        return fire_time(value)

    def target_input(self) -> dict[str, Any]:
        return {TARGET_KEY: self.model_dump(mode="json", exclude_none=True)}

    def continued(self, after: str) -> ScheduleFire:
        return self.model_copy(update={"after": after})


def fire_time(value: str) -> str:
    """A fire time in the engine's one format (UTC, milliseconds, ``Z``), so fires
    compare as text; EventBridge Scheduler writes ``2026-12-01T19:00:00Z``. ValueError
    for anything but an ISO-8601 time with a zone."""
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (UTC: a trailing Z)")
    return engine.format_time(when)


def is_fire_of(schedule: Schedule, fire: str) -> bool:
    """Whether ``fire`` is one of the schedule's fire times (it is not, once the spec's
    cron or time zone changed after the fire was armed)."""
    when = engine.parse_time(fire)
    return next_fire(schedule.cron, schedule.timezone, when - timedelta(seconds=1)) == when


def next_fire_after(schedule: Schedule, after: datetime) -> str:
    return engine.format_time(next_fire(schedule.cron, schedule.timezone, after))


def applying(spec: Spec, machine: Machine, schedule_name: str) -> Schedule | None:
    """The schedule of the machine's own spec, when it reaches the machine in its
    current state."""
    schedule = spec.schedule(schedule_name)
    if schedule is None or not schedule.applies_in(machine.state):
        return None
    return schedule if spec.handler(machine.state, schedule.event) is not None else None


def machine_event(machine: Machine, schedule: Schedule, fire: str) -> BusEvent:
    """The internal ``Machine Event`` carrying one fire to one machine. The machine
    applies the event of the schedule as its own spec has it; ``event`` tells readers of
    the bus which one that is."""
    return BusEvent(
        detail_type="Machine Event",
        detail={
            "machine_id": machine.id,
            "spec": machine.spec,
            "event": schedule.event,
            "schedule": schedule.name,
            "fire": fire,
            "reason": schedule_actor(schedule.name),
        },
    )


def fan_out_page(
    *, store: Store, bus: Bus, catalog: SpecCatalog, fire: ScheduleFire
) -> tuple[int, str | None]:
    """Publish the fire to the machines of one page; how many were sent the event, and
    the token of the next page (None: this was the last)."""
    machines, token = store.list_machines(spec=fire.spec, limit=FAN_OUT_PAGE, next_token=fire.after)
    events: list[BusEvent] = []
    for machine in machines:
        schedule = applying(catalog.resolve(machine.spec_digest, store), machine, fire.schedule)
        if schedule is not None:
            events.append(machine_event(machine, schedule, fire.fire))
    if events:
        bus.publish(events)
    log.info(
        "schedule %s of spec %s, fire %s: %d of %d machines in this page",
        fire.schedule,
        fire.spec,
        fire.fire,
        len(events),
        len(machines),
    )
    return len(events), token


# ---- locally: a SCHEDULE timer per spec schedule -----------------------------------


def schedule_timer(spec: str, schedule: Schedule, fire: str) -> Timer:
    """The local timer of one fire of a spec schedule (``machine_id`` is the spec)."""
    return Timer(
        purpose=TimerPurpose.SCHEDULE,
        machine_id=spec,
        due=fire,
        guard={"schedule": schedule.name, "fire": fire},
    )


def first_timers(specs: Iterable[Spec], now: str) -> list[Timer]:
    """A timer for the next fire of each schedule of ``specs`` (what the local server
    arms when it starts; arming one that is armed already keeps one)."""
    after = engine.parse_time(now)
    return [
        schedule_timer(spec.name, schedule, next_fire_after(schedule, after))
        for spec in specs
        for schedule in spec.schedules or []
    ]


def fire_timer(
    timer: Timer,
    *,
    catalog: SpecCatalog,
    timers: Timers,
    now: str,
    fan_out: Callable[[ScheduleFire], str | None],
) -> Outcome:
    """A SCHEDULE timer came due: arm the next fire, then send this one to the spec's
    machines page by page, unless it is more than LATE_SECONDS late (the server was
    down at its time) — then only the next is armed. A timer of a schedule the spec no
    longer has, or whose cron no longer fires then, is stale: the server armed the
    schedule's own next fire when it started."""
    name, fire = str(timer.guard.get("schedule", "")), str(timer.guard.get("fire", ""))
    spec = catalog.get(timer.machine_id)
    schedule = spec.schedule(name) if spec is not None else None
    if schedule is None or fire != timer.due or not is_fire_of(schedule, fire):
        log.info("schedule timer %s: no such fire of a served spec any more", timer.name)
        return Outcome.STALE
    when, at = engine.parse_time(fire), engine.parse_time(now)
    timers.arm(
        [schedule_timer(timer.machine_id, schedule, next_fire_after(schedule, max(when, at)))]
    )
    if (at - when).total_seconds() > LATE_SECONDS:
        log.warning(
            "schedule %s of spec %s: the fire of %s was missed (found at %s); skipped",
            name,
            timer.machine_id,
            fire,
            now,
        )
        return Outcome.STALE
    page = ScheduleFire(spec=timer.machine_id, schedule=name, fire=fire)
    while (token := fan_out(page)) is not None:
        page = page.continued(token)
    return Outcome.APPLIED
