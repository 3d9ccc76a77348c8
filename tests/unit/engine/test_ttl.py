"""docs/runtime.md, "TTL": a machine's expiry, its warnings, extensions and the expire
event, decided by the engine with an injected clock (timers are effects here; the
service tests fire them through FakeTimers)."""

from __future__ import annotations

from typing import Any

import pytest
from statewright import engine
from statewright.engine import (
    ArmTimer,
    Create,
    DisarmTimer,
    ExpireEvent,
    Outcome,
    Reconcile,
    SetTtl,
    TimerFired,
)
from statewright.errors import InvalidRequest
from statewright.timers import Timer, TimerPurpose

from tests.unit.engine.helpers import NOOP, PREVIEW, T0, Run, advance, kinds, make_spec, published

HOUR = 3600

TTL_SPEC = make_spec(
    "ttl",
    {
        "events": ["LAUNCH", "DESTROY", "TOUCH"],
        "states": {
            "INIT": {"on": {"LAUNCH": advance("PROVISION")}},
            "PROVISION": {"tasks": ["setup"], "on": {"NEXT": advance("RUN")}},
            "RUN": {"on": {"DESTROY": advance("TEARDOWN"), "TOUCH": NOOP}},
            "TEARDOWN": {"terminal": True, "tasks": ["teardown"]},
        },
        "tasks": {
            "setup": {"executor": "lambda", "config": {"name": "setup"}},
            "teardown": {"executor": "lambda", "config": {"name": "teardown"}},
        },
        "lifecycle": {
            "ttl": "8h",
            "max_ttl": "3d",
            "expire_event": "DESTROY",
            "warn_before": ["10m", "1h"],
            "extend_on": ["TOUCH"],
        },
    },
)


def at(seconds: float) -> str:
    return engine.add_seconds(T0, seconds)


def armed(decision: engine.Decision) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (e.timer.purpose.value, e.timer.due, dict(e.timer.guard))
        for e in decision.effects
        if isinstance(e, ArmTimer)
    ]


def disarmed(decision: engine.Decision) -> list[str]:
    """The expiry and warning timers the decision disarms (by name)."""
    names = [e.name for e in decision.effects if isinstance(e, DisarmTimer)]
    return [n for n in names if n.startswith(("expiry-", "warning-"))]


def timer(run: Run, purpose: TimerPurpose, offset: int | None = None) -> Timer:
    """The timer of ``purpose`` the engine armed for the machine's current expires_at."""
    expires_at = run.machine.expires_at
    assert expires_at is not None
    if purpose is TimerPurpose.EXPIRY:
        return Timer(
            purpose=purpose,
            machine_id=run.machine.id,
            due=expires_at,
            guard={"expires_at": expires_at},
        )
    assert offset is not None
    return Timer(
        purpose=purpose,
        machine_id=run.machine.id,
        due=engine.add_seconds(expires_at, -offset),
        guard={"expires_at": expires_at, "offset": offset},
    )


def in_run() -> Run:
    run = Run(TTL_SPEC)
    run.event("LAUNCH")
    run.complete("setup")
    run.system("NEXT")
    assert run.machine.state == "RUN"
    return run


def expire(run: Run) -> engine.Decision:
    run.tick(
        (
            engine.parse_time(run.machine.expires_at or "") - engine.parse_time(run.now)
        ).total_seconds()
    )
    return run.apply(TimerFired(timer(run, TimerPurpose.EXPIRY)))


def expire_events(decision: engine.Decision) -> list[dict[str, Any]]:
    return [
        d for t, d in published(decision) if t == "Machine Event" and d.get("reason") == "expiry"
    ]


# ---- creation -------------------------------------------------------------------------


def test_a_machine_expires_its_spec_ttl_after_creation_with_timers_for_expiry_and_warnings() -> (
    None
):
    decision = engine.create(TTL_SPEC, Create("m"), T0)
    m = decision.machine
    assert m is not None
    assert (m.expires_at, m.expired, m.ttl_seconds) == (at(8 * HOUR), False, 8 * HOUR)
    assert armed(decision) == [
        ("expiry", at(8 * HOUR), {"expires_at": at(8 * HOUR)}),
        ("warning", at(7 * HOUR), {"expires_at": at(8 * HOUR), "offset": HOUR}),
        ("warning", at(8 * HOUR - 600), {"expires_at": at(8 * HOUR), "offset": 600}),
    ]
    assert decision.history[0].kind == "created"
    assert decision.history[0].expires_at == at(8 * HOUR)
    public = m.public()
    assert (public["expires_at"], public["expired"]) == (at(8 * HOUR), False)
    assert not {"ttl_seconds", "expire_pending", "warned"} & set(public)


def test_a_create_may_ask_for_its_own_ttl_and_warnings_already_past_are_not_armed() -> None:
    decision = engine.create(TTL_SPEC, Create("m", ttl=1800), T0)
    assert decision.machine is not None and decision.machine.expires_at == at(1800)
    # 1h before a 30-minute expiry is already past: only the 10-minute warning is armed
    assert [(p, due) for p, due, _ in armed(decision)] == [
        ("expiry", at(1800)),
        ("warning", at(1200)),
    ]
    longest = engine.create(TTL_SPEC, Create("m", ttl=3 * 24 * HOUR), T0).machine
    assert longest is not None and longest.expires_at == at(3 * 24 * HOUR)


def test_a_ttl_above_max_ttl_is_refused_naming_the_most_allowed() -> None:
    with pytest.raises(InvalidRequest) as refused:
        engine.create(TTL_SPEC, Create("m", ttl=3 * 24 * HOUR + 1), T0)
    assert "ttl 3d1s is longer than spec ttl allows: its max_ttl is 3d" in refused.value.message


def test_a_spec_without_lifecycle_takes_no_ttl_and_its_machines_never_expire() -> None:
    with pytest.raises(InvalidRequest, match=r"do not expire .*no lifecycle"):
        engine.create(PREVIEW, Create("m", ttl=60), T0)
    decision = engine.create(PREVIEW, Create("m"), T0)
    assert decision.machine is not None
    assert (decision.machine.expires_at, decision.machine.expired) == (None, False)
    assert armed(decision) == []
    assert decision.machine.public()["expires_at"] is None


# ---- warnings -------------------------------------------------------------------------


def test_a_warning_publishes_machine_expiring_once_and_records_expiring() -> None:
    run = in_run()
    run.tick(7 * HOUR)
    warning = timer(run, TimerPurpose.WARNING, HOUR)
    decision = run.apply(TimerFired(warning))
    assert decision.outcome is Outcome.APPLIED
    assert kinds(decision) == ["expiring"]
    entry = decision.history[0]
    assert (entry.source, entry.actor, entry.expires_at) == ("expiry", "expiry", at(8 * HOUR))
    assert published(decision) == [
        (
            "Machine Expiring",
            {
                "machine_id": "m-1",
                "spec": "ttl",
                "state": "RUN",
                "expires_at": at(8 * HOUR),
                "in_seconds": HOUR,
            },
        )
    ]
    again = run.apply(TimerFired(warning))
    assert again.outcome is Outcome.DUPLICATE and again.machine is None and again.effects == ()


def test_timers_of_an_expiry_that_moved_are_stale() -> None:
    run = in_run()
    old_warning = timer(run, TimerPurpose.WARNING, HOUR)
    old_expiry = timer(run, TimerPurpose.EXPIRY)
    run.tick(HOUR)
    run.apply(SetTtl(24 * HOUR, source="api", actor="ana"))
    for old in (old_warning, old_expiry):
        decision = run.apply(TimerFired(old))
        assert decision.outcome is Outcome.STALE
        assert decision.machine is None and decision.effects == ()
    assert run.machine.expired is False


# ---- expiry ---------------------------------------------------------------------------


def test_at_expiry_the_expire_event_is_sent_and_applied_with_source_expiry() -> None:
    run = in_run()
    decision = expire(run)
    assert kinds(decision) == ["expired"]
    assert (decision.history[0].source, decision.history[0].actor) == ("expiry", "expiry")
    assert run.machine.expired is True
    sent = expire_events(decision)
    assert sent == [
        {
            "machine_id": "m-1",
            "event": "DESTROY",
            "epoch": run.machine.epoch,
            "spec": "ttl",
            "reason": "expiry",
        }
    ]
    applied = run.apply(ExpireEvent("DESTROY", sent[0]["epoch"]))
    assert applied.outcome is Outcome.APPLIED
    assert run.machine.state == "TEARDOWN"
    assert [(h.kind, h.source, h.actor) for h in applied.history[:2]] == [
        ("event", "expiry", "expiry"),
        ("transition", None, "expiry"),
    ]
    # after that, no further expiry: a repeat of the event and the timer are stale
    assert run.apply(ExpireEvent("DESTROY", sent[0]["epoch"])).outcome is Outcome.STALE
    assert run.apply(TimerFired(timer(run, TimerPurpose.EXPIRY))).outcome is Outcome.STALE


def test_a_state_that_does_not_accept_the_expire_event_gets_it_on_each_entry_until_one_does() -> (
    None
):
    run = Run(TTL_SPEC)
    decision = expire(run)  # in INIT, which accepts only LAUNCH
    assert run.machine.expired and kinds(decision) == ["expired"]
    assert expire_events(decision) == []
    entered = run.event("LAUNCH")  # PROVISION does not accept DESTROY either
    assert run.machine.state == "PROVISION" and expire_events(entered) == []
    run.complete("setup")
    next_applied = run.system("NEXT")  # RUN does
    sent = expire_events(next_applied)
    assert [(d["event"], d["epoch"]) for d in sent] == [("DESTROY", run.machine.epoch)]
    # an expire event of an epoch left since is stale
    assert run.apply(ExpireEvent("DESTROY", run.machine.epoch - 1)).outcome is Outcome.STALE
    run.apply(ExpireEvent("DESTROY", run.machine.epoch))
    assert run.machine.state == "TEARDOWN"


def test_a_pending_expire_event_whose_publishing_was_lost_is_sent_again_by_reconcile() -> None:
    run = in_run()
    expire(run)
    decision = run.apply(Reconcile())
    assert [d["epoch"] for d in expire_events(decision)] == [run.machine.epoch]
    assert decision.machine is None  # published, nothing written


def test_the_expire_event_sent_by_anyone_ends_a_pending_expiry() -> None:
    run = Run(TTL_SPEC)
    expire(run)
    run.event("LAUNCH")
    run.complete("setup")
    sent = expire_events(run.system("NEXT"))
    assert len(sent) == 1
    # the user destroys it before the expire event arrives: that was the expiry
    run.apply(engine.ExternalEvent("DESTROY", source="api"))
    assert run.machine.expire_pending is False
    assert run.apply(ExpireEvent("DESTROY", sent[0]["epoch"])).outcome is Outcome.STALE


def test_deleting_the_machine_disarms_its_expiry_timers_still_to_come() -> None:
    run = in_run()
    expected = [
        t.name
        for t in (
            timer(run, TimerPurpose.EXPIRY),
            timer(run, TimerPurpose.WARNING, HOUR),
            timer(run, TimerPurpose.WARNING, 600),
        )
    ]
    run.event("DESTROY")
    decision = run.complete("teardown")
    assert decision.deleted
    assert sorted(disarmed(decision)) == sorted(expected)


# ---- a new ttl ------------------------------------------------------------------------


def test_a_new_ttl_counts_from_now_rearms_and_calls_off_a_pending_expiry() -> None:
    run = Run(TTL_SPEC)
    expire(run)  # expired in INIT: the expire event waits for a state that accepts it
    run.tick(60)
    decision = run.apply(SetTtl(24 * HOUR, source="api", actor="ana"))
    expected_at = engine.add_seconds(run.now, 24 * HOUR)
    m = run.machine
    assert (m.expires_at, m.expired, m.expire_pending, m.ttl_seconds) == (
        expected_at,
        False,
        False,
        24 * HOUR,
    )
    assert [(h.kind, h.actor, h.source, h.expires_at) for h in decision.history] == [
        ("ttl_changed", "ana", "api", expected_at)
    ]
    assert [p for p, _, _ in armed(decision)] == ["expiry", "warning", "warning"]
    assert disarmed(decision) == []  # its timers have all fired
    run.event("LAUNCH")
    run.complete("setup")
    assert expire_events(run.system("NEXT")) == []  # no longer pending


def test_a_new_ttl_above_max_ttl_or_for_a_spec_without_lifecycle_is_refused() -> None:
    run = in_run()
    with pytest.raises(InvalidRequest, match="max_ttl is 3d; ask for at most that"):
        run.apply(SetTtl(4 * 24 * HOUR))
    plain = Run(PREVIEW)
    with pytest.raises(InvalidRequest, match="no lifecycle"):
        plain.apply(SetTtl(HOUR))


def test_a_new_ttl_disarms_the_timers_of_the_old_expiry() -> None:
    run = in_run()
    old = sorted(
        t.name
        for t in (
            timer(run, TimerPurpose.EXPIRY),
            timer(run, TimerPurpose.WARNING, HOUR),
            timer(run, TimerPurpose.WARNING, 600),
        )
    )
    decision = run.apply(SetTtl(2 * HOUR))
    assert sorted(disarmed(decision)) == old


# ---- extend_on ------------------------------------------------------------------------


def test_an_extend_on_event_moves_expiry_to_now_plus_the_machines_ttl() -> None:
    run = in_run()
    run.tick(5 * HOUR)
    decision = run.event("TOUCH")
    assert run.machine.expires_at == engine.add_seconds(run.now, 8 * HOUR)
    assert [p for p, _, _ in armed(decision)] == ["expiry", "warning", "warning"]
    # with a ttl set through the API, extensions use that ttl
    run.apply(SetTtl(2 * HOUR))
    run.tick(HOUR)
    run.event("TOUCH")
    assert run.machine.expires_at == engine.add_seconds(run.now, 2 * HOUR)


def test_an_extend_on_event_never_moves_expiry_earlier_and_revives_no_expired_machine() -> None:
    run = in_run()
    before = run.machine.expires_at
    same = run.event("TOUCH")  # at the very time of creation: now + ttl is no later
    assert run.machine.expires_at == before and armed(same) == []
    run2 = Run(TTL_SPEC)
    expire(run2)
    run2.event("LAUNCH")
    run2.complete("setup")
    run2.system("NEXT")
    expired_at = run2.machine.expires_at
    run2.event("TOUCH")
    assert run2.machine.expires_at == expired_at and run2.machine.expired
