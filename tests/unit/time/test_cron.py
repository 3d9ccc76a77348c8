"""Five-field cron (docs/spec.md#cron-and-time-zones): what a schedule accepts, its next
fire time in a time zone, and its EventBridge Scheduler spelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statewright.cron import (
    DAY_NAMES,
    CronError,
    check_cron,
    next_fire,
    scheduler_expression,
    zone,
)


@pytest.mark.parametrize(
    ("cron", "expression"),
    [
        ("0 19 * * MON-FRI", "cron(0 19 ? * MON-FRI *)"),
        ("0 7 * * 1-5", "cron(0 7 ? * MON-FRI *)"),
        ("*/15 * * * *", "cron(0/15 * * * ? *)"),
        ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ("30 2 */3 * *", "cron(30 2 1/3 * ? *)"),
        ("0 0 * */3 *", "cron(0 0 * 1/3 ? *)"),
        ("5/20 * * * *", "cron(5/20 * * * ? *)"),
        ("5-20/5 8-18 * JAN-MAR *", "cron(5,10,15,20 8-18 * JAN-MAR ? *)"),
        ("0 0 * * 0", "cron(0 0 ? * SUN *)"),
        ("0 0 * * 7", "cron(0 0 ? * SUN *)"),
        ("0 0 * * 5-7", "cron(0 0 ? * SUN,FRI-SAT *)"),
        ("0 0 * * */2", "cron(0 0 ? * SUN,TUE,THU,SAT *)"),
        ("0 9 * * sun,wed", "cron(0 9 ? * SUN,WED *)"),
        ("  0   19 * *   mon-fri ", "cron(0 19 ? * MON-FRI *)"),
    ],
)
def test_five_fields_become_schedulers_six(cron: str, expression: str) -> None:
    assert scheduler_expression(cron) == expression


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 0 1 * MON", "restricts both day-of-month (`1`) and day-of-week (`MON`)"),
        ("0 0 1-31 * 1-5", "EventBridge Scheduler cannot express"),
        ("0 0 L * *", "`L` (last) is not accepted"),
        ("0 0 * * 5L", "`L` (last) is not accepted"),
        ("0 0 15W * *", "`W` (weekday) is not accepted"),
        ("0 0 * * MON#2", "`#` (nth weekday) is not accepted"),
        ("0 0 ? * MON", "`?` is not accepted"),
        ("0 0 * *", "has 4 fields; a cron has five"),
        ("0 0 * * * 2027", "has 6 fields"),
        ("", "has 0 fields"),
        ("60 * * * *", "minute 60 is outside 0-59"),
        ("0 24 * * *", "hour 24 is outside 0-23"),
        ("0 0 0 * *", "day-of-month 0 is outside 1-31"),
        ("0 0 * 13 *", "month 13 is outside 1-12"),
        ("0 0 * * 8", "day-of-week 8 is outside 0-7"),
        ("0 0 * FOO *", "`FOO` is not a month (1-12 or JAN-DEC)"),
        ("0 0 * * 5-1", "the range `5-1` (day-of-week) runs backwards"),
        ("*/0 * * * *", "step in `*/0`"),
        ("1,,2 * * * *", "has an empty item"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_what_a_schedule_cannot_take_is_refused_with_the_reason(cron: str, says: str) -> None:
    with pytest.raises(CronError) as caught:
        check_cron(cron)
    assert says in str(caught.value)


def test_next_fire_is_strictly_later_and_in_utc() -> None:
    at = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # a Tuesday
    assert next_fire("* * * * *", "UTC", at) == at + timedelta(minutes=1)
    assert next_fire("0 18 * * *", "UTC", at) == datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    # 19:00 in Berlin is 18:00 UTC in winter, 17:00 UTC in summer.
    assert next_fire("0 19 * * MON-FRI", "Europe/Berlin", at) == datetime(
        2026, 12, 2, 18, 0, tzinfo=UTC
    )
    summer = datetime(2026, 7, 3, 18, 0, tzinfo=UTC)  # a Friday, after 19:00 in Berlin
    assert next_fire("0 19 * * MON-FRI", "Europe/Berlin", summer) == datetime(
        2026, 7, 6, 17, 0, tzinfo=UTC
    )


def test_a_time_skipped_by_daylight_saving_fires_just_after_the_change() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29; 02:30 fires at 03:00 local (01:00 UTC).
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    fire = next_fire("30 2 * * *", "Europe/Berlin", before)
    assert fire == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_unknown_time_zones_are_refused() -> None:
    assert str(zone("Europe/Berlin")) == "Europe/Berlin"
    for name in ("Europe/Berln", "Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(CronError, match="not an IANA time zone"):
            zone(name)


_DAY_TERMS = st.one_of(
    st.integers(0, 7).map(str),
    st.sampled_from(DAY_NAMES),
    st.tuples(st.integers(0, 7), st.integers(0, 7)).map(lambda t: f"{min(t)}-{max(t)}"),
    st.tuples(st.integers(0, 7), st.integers(1, 4)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.integers(1, 4).map(lambda step: f"*/{step}"),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_DAY_TERMS, min_size=1, max_size=3).map(",".join))
def test_the_days_scheduler_is_given_are_the_days_cron_fires_on(days: str) -> None:
    cron = f"0 12 * * {days}"
    expression = scheduler_expression(cron)
    named = expression.split(" ")[4]
    listed: set[str] = set()
    for run in named.split(","):
        first, _, last = run.partition("-")
        start = DAY_NAMES.index(first)
        end = DAY_NAMES.index(last) if last else start
        listed.update(DAY_NAMES[start : end + 1])
    fired: set[str] = set()
    at = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)  # a Sunday, after noon
    while at < datetime(2026, 12, 6, 13, 0, tzinfo=UTC):
        at = next_fire(cron, "UTC", at)
        if at < datetime(2026, 12, 6, 13, 0, tzinfo=UTC):
            fired.add(DAY_NAMES[(at.weekday() + 1) % 7])
    assert listed == fired, (cron, expression)
