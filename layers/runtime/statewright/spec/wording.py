"""How findings phrase a near miss and what would be accepted instead."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def explain(
    message: str,
    *,
    word: str | None = None,
    candidates: Iterable[str] = (),
    accepted: Iterable[str] | None = None,
) -> str:
    """``message; did you mean `x`? Accepted here: a, b`` (each part when it applies)."""
    candidates = list(candidates)
    close = did_you_mean(word, candidates) if word is not None else None
    text = message
    if close is not None:
        text += f"; did you mean `{close}`?"
    if accepted is not None:
        listed = ", ".join(accepted) or "nothing"
        text += f" Accepted here: {listed}" if close is not None else f"; accepted here: {listed}"
    return text


def shown(value: Any) -> str:
    """A value as a message quotes it: short, in backticks, YAML-flavoured."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    else:
        text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"`{text}`"
