"""Text that is safe to show on a terminal: what a client, a server or a spec controls may
reach the CLI's output and the server's log, and a control character there would act
on the terminal (``ESC [2J`` clears it, ``ESC ]8`` makes links, ``\\r`` overwrites a
line) instead of being read. Such characters are written as visible escapes."""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls; the Unicode characters that reorder or hide text
# (bidirectional overrides and isolates, zero-width ones, line and paragraph
# separators, the byte-order mark); and lone surrogates, which no terminal can print.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control or invisible character written as an escape
    (``\\x1b``, ``\\u202e``); everything else, other scripts included, kept as it is."""
    return _UNSAFE.sub(_escape, str(value))
