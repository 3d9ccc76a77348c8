"""Durations as people write them in a spec or a request: ``90s``, ``30m``, ``72h``,
``7d``, ``1d12h`` (docs/spec.md#durations).

A duration is whole units of days, hours, minutes and seconds, largest first, each unit
at most once, with no spaces and no bare numbers (``3600`` could mean seconds or hours:
write ``3600s`` or ``1h``). It is held as whole seconds and written back in its shortest
canonical form (``90m`` reads back as ``1h30m``), so a spec's digest does not depend on
how its author spelt a duration."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, PlainSerializer

# Ten years: enough for any ttl, and far from the end of the calendar.
MAX_DURATION_SECONDS: Final = 3650 * 86400
UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
EXAMPLES: Final = "90s, 30m, 72h, 7d, 1d12h"

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# The same grammar for a JSON Schema (ECMA-262): at least one unit.
DURATION_PATTERN: Final = r"^(?=[0-9])(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?$"


class DurationError(ValueError):
    """The text is not a duration; the message says what is accepted."""


def parse_duration(text: str) -> int:
    """Whole seconds of ``text``; at least one second, at most ten years."""
    match = _DURATION.fullmatch(text) if text else None
    if match is None or not any(match.groups()):
        hint = ""
        if text.strip().isdigit():
            hint = f" (a bare number has no unit: write `{text.strip()}s`)"
        raise DurationError(
            f"`{text}` is not a duration{hint}; write whole days, hours, minutes and seconds, "
            f"largest first, e.g. {EXAMPLES}"
        )
    seconds = sum(
        int(amount) * size
        for amount, (_, size) in zip(match.groups(), UNITS, strict=True)
        if amount
    )
    if seconds < 1:
        raise DurationError(f"`{text}` is no time at all; a duration is at least 1s")
    if seconds > MAX_DURATION_SECONDS:
        raise DurationError(
            f"`{text}` is longer than {format_duration(MAX_DURATION_SECONDS)} (ten years)"
        )
    return seconds


def format_duration(seconds: int) -> str:
    """The canonical text of ``seconds``: ``5400`` is ``1h30m``, ``0`` is ``0s``."""
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _check_seconds(seconds: int) -> int:
    if not 1 <= seconds <= MAX_DURATION_SECONDS:
        raise DurationError(
            f"{seconds} seconds is not a duration from 1s to "
            f"{format_duration(MAX_DURATION_SECONDS)}"
        )
    return seconds


def _text_or_seconds(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _check_seconds(value)
    return value


def _text_only(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise DurationError(f"`{value}` has no unit; write a duration such as {EXAMPLES}")
    return value


_CANONICAL = PlainSerializer(format_duration, return_type=str, when_used="json")

# A duration field of a model the code builds: accepts the text or whole seconds, holds
# whole seconds, and serializes to the canonical text in JSON.
Duration = Annotated[int, BeforeValidator(_text_or_seconds), _CANONICAL]
# The same for input from people (a request body): text only, since a bare number has
# no unit that everyone would read the same way.
DurationText = Annotated[int, BeforeValidator(_text_only), _CANONICAL]
