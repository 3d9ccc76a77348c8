"""`statewright serve`'s log handler: every logged value reaches the terminal with its
control characters escaped, whichever module logged it; tracebacks keep their lines."""

from __future__ import annotations

import logging
import sys

from statewright.cli.serve import PrintableFormatter


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord(
        "statewright.service", logging.INFO, __file__, 1, message, args, exc_info
    )  # type: ignore[arg-type]


def test_values_logged_anywhere_are_escaped() -> None:
    line = PrintableFormatter("%(name)s: %(message)s").format(
        record("task %s failed: %s", "db\x1b[2J", "Error: \x1b]8;;https://x\x07click\r\u202e")
    )
    assert line == (
        "statewright.service: task db\\x1b[2J failed: "
        "Error: \\x1b]8;;https://x\\x07click\\x0d\\u202e"
    )


def test_a_traceback_keeps_its_lines() -> None:
    try:
        raise ValueError("bad \x1b[31m value")
    except ValueError:
        text = PrintableFormatter("%(message)s").format(record("boom", exc_info=sys.exc_info()))
    assert "\x1b" not in text
    assert text.splitlines()[0] == "boom"
    assert text.splitlines()[1] == "Traceback (most recent call last):"
    assert text.endswith("ValueError: bad \\x1b[31m value")
