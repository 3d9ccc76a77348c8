"""Five-field cron for spec schedules (docs/spec.md#schedules): checking an expression,
its next fire time in a time zone, and its EventBridge Scheduler spelling.

A schedule must fire the same way locally and on AWS, so only what both can express is
accepted: numbers, names (JAN-DEC, SUN-SAT), ``*``, ``,``, ``-`` and ``/`` in the five
standard fields, and never both day fields restricted (cron fires when *either* matches;
Scheduler wants one of them to be ``?``). Cron's ``L``, ``W``, ``#`` and ``?`` differ
between the two and are refused.

Next fire times come from cronsim (docs/spec.md#cron-and-time-zones says why that
library), which follows Debian cron, daylight-saving quirks included."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

MONTH_NAMES: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip
DAY_NAMES: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FORMAT: Final = "minute hour day-of-month month day-of-week, e.g. `0 19 * * MON-FRI`"


class CronError(ValueError):
    """The expression is not one a schedule accepts; the message says why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the number of names[0]

    def number(self, text: str) -> int:
        upper = text.upper()
        if upper in self.names:
            return self.names.index(upper) + self.first_name
        if not text.isdigit():
            accepted = f"{self.low}-{self.high}"
            if self.names:
                accepted += f" or {self.names[0]}-{self.names[-1]}"
            raise CronError(f"`{text}` is not a {self.name} ({accepted})")
        value = int(text)
        if not self.low <= value <= self.high:
            raise CronError(f"{self.name} {value} is outside {self.low}-{self.high}")
        return value


# Day-of-week 7 is Sunday as well as 0, as in cron.
FIELDS: Final = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("day-of-week", 0, 7, DAY_NAMES, 0),
)
_DOM, _DOW = 2, 4
_NAME = re.compile(r"[A-Z]{3}")
_REFUSED = {
    "L": "`L` (last)",
    "W": "`W` (weekday)",
    "#": "`#` (nth weekday)",
    "?": "`?`",
}


def normalize_cron(text: str) -> str:
    """The expression with single spaces and upper-case names (what the spec stores)."""
    return " ".join(text.split()).upper()


def _term_values(field: _Field, term: str) -> list[int]:
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"the step in `{term}` ({field.name}) must be a whole number >= 1")
        step = int(step_text)
    if base == "*":
        start, end = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        start, end = field.number(first), field.number(last)
        if end < start:
            raise CronError(f"the range `{base}` ({field.name}) runs backwards")
    else:
        start = field.number(base)
        end = field.high if slash else start
    return list(range(start, end + 1, step))


def _field_values(field: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for term in text.split(","):
        if not term:
            raise CronError(f"the {field.name} field `{text}` has an empty item")
        values.update(_term_values(field, term))
    return values


def check_cron(text: str) -> str:
    """The normalized expression, or CronError naming what is wrong with it."""
    cron = normalize_cron(text)
    parts = cron.split(" ") if cron else []
    if len(parts) != len(FIELDS):
        raise CronError(f"`{text}` has {len(parts)} fields; a cron has five: {FORMAT}")
    # Names are three letters; what is left of a field without them holds no L, W, # or ?.
    unnamed = _NAME.sub("", cron)
    for char, what in _REFUSED.items():
        if char in unnamed:
            raise CronError(
                f"{what} is not accepted (cron and EventBridge Scheduler read it differently); "
                "use numbers, names, `*`, `,`, `-` and `/`"
            )
    for field, part in zip(FIELDS, parts, strict=True):
        _field_values(field, part)
    if parts[_DOM] != "*" and parts[_DOW] != "*":
        raise CronError(
            f"`{cron}` restricts both day-of-month (`{parts[_DOM]}`) and day-of-week "
            f"(`{parts[_DOW]}`); EventBridge Scheduler cannot express that (cron fires when "
            "either matches): keep one of them `*`, or write two schedules"
        )
    try:
        CronSim(cron, datetime(2000, 1, 1))
    except CronSimError as exc:
        # The fields are well formed by now, so what cronsim refuses is a day no month
        # it names has (`0 0 31 2 *`).
        raise CronError(f"`{cron}` never fires: no month it names has that day ({exc})") from exc
    return cron


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or CronError (with the closest names) when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"`{name}` is not an IANA time zone, e.g. UTC or Europe/Berlin") from exc


def zone_names() -> set[str]:
    return available_timezones()


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), in UTC. A cron that passed
    check_cron always fires again (the day fields are never both restricted)."""
    local = after.astimezone(zone(timezone))
    fire = next(CronSim(cron, local))
    return fire.astimezone(UTC)


def _scheduler_field(field: _Field, text: str) -> str:
    """Minute, hour, day-of-month and month in Scheduler's syntax: `*/n` becomes
    `low/n`; a stepped range becomes its list of values."""
    terms: list[str] = []
    for term in text.split(","):
        base, slash, step = term.partition("/")
        if not slash:
            terms.append(term)
        elif base == "*":
            terms.append(f"{field.low}/{step}")
        elif "-" in base:
            terms.extend(str(v) for v in _term_values(field, term))
        else:
            terms.append(f"{field.number(base)}/{step}")
    return ",".join(terms)


def _scheduler_days(text: str) -> str:
    """Day-of-week as names (Scheduler numbers days 1-7 from Sunday, cron 0-7, and has no
    `/` there): consecutive days become ranges."""
    days = sorted({v % 7 for v in _field_values(FIELDS[_DOW], text)})
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs
    )


def scheduler_expression(text: str) -> str:
    """EventBridge Scheduler's six-field ``cron(minute hour day-of-month month
    day-of-week year)`` for a five-field cron, with ``?`` in the day field left open."""
    cron = check_cron(text)
    minute, hour, dom, month, dow = cron.split(" ")
    fields = [
        _scheduler_field(FIELDS[0], minute),
        _scheduler_field(FIELDS[1], hour),
        _scheduler_field(FIELDS[_DOM], dom),
        _scheduler_field(FIELDS[3], month),
    ]
    if dow == "*":
        day_of_week = "?"
    else:
        fields[2] = "?"
        day_of_week = _scheduler_days(dow)
    return f"cron({' '.join([*fields, day_of_week, '*'])})"
