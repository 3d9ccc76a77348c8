"""A lint finding: where in which file, how bad, which rule, and what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem in one spec. ``line`` and ``column`` are 1-based and point at the
    offending node; ``rule`` is the stable rule id of docs/spec.md#rules."""

    path: str
    line: int
    column: int
    severity: Severity
    rule: str
    message: str

    def format(self) -> str:
        """``path:line:col: severity: message [rule-id]``, the `validate` text format."""
        return (
            f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message} [{self.rule}]"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
