"""What the Machine 1.0 format allows, in one place: names and their patterns, the
system events, the keys of each mapping, the bounds of the extensions, the reference
syntax, and the rule ids the linter reports.

The linter, the JSON Schema, the pydantic models and the engine all read these; none
of them spells a pattern or a bound of its own. docs/spec.md documents each rule."""

from __future__ import annotations

import re
from typing import Final

# ---- names ----------------------------------------------------------------------------

# Event and state names. The Machine 1.0 text says [A-Z0-9-], but its own example uses
# MARK_ACCESS, so `_` is accepted.
NAME_PATTERN: Final = r"^[A-Z0-9][A-Z0-9_-]*$"
# Task names: no dot, slash or space, so a name never forms a path and a reference
# `tasks.NAME.outputs` reads one way only.
TASK_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# Machine ids (the API's path parameter and the engine's check).
MACHINE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Keys of Statewright's own extensions to any mapping (ignored by the format).
EXTENSION_PREFIX: Final = "x-"

# Schedule names: they become part of an EventBridge Scheduler schedule's name
# (SCHEDULER_NAME_FORMAT), whose characters are [0-9A-Za-z_.-]; `.` separates its parts.
SCHEDULE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# What a spec's name may hold when the spec has schedules (it is part of the same name).
SPEC_NAME_IN_SCHEDULER_PATTERN: Final = r"^[A-Za-z0-9_.-]+$"
# The recurring schedule of spec schedule NAME of spec SPEC in environment ENV; it must
# fit Scheduler's 64 characters for the longest environment name (infra/settings.py).
SCHEDULER_NAME_FORMAT: Final = "{env}.{spec}.{schedule}"
SCHEDULER_NAME_CHARS: Final = 64
MAX_ENVIRONMENT_NAME_CHARS: Final = 20
DEFAULT_TIMEZONE: Final = "UTC"


def scheduler_name(env: str, spec: str, schedule: str) -> str:
    """The EventBridge Scheduler name of a spec schedule's recurring schedule."""
    return SCHEDULER_NAME_FORMAT.format(env=env, spec=spec, schedule=schedule)


def scheduler_name_room(spec: str) -> int:
    """How many characters a schedule name of ``spec`` may have so that its Scheduler
    name fits with any environment name."""
    longest = scheduler_name("e" * MAX_ENVIRONMENT_NAME_CHARS, spec, "")
    return SCHEDULER_NAME_CHARS - len(longest)


# ---- events and actions ---------------------------------------------------------------

INIT_STATE: Final = "INIT"
SYSTEM_EVENTS: Final = ("NEXT", "FAILED")
ACTIONS: Final = ("advance", "no-op")

# ---- the keys of each mapping ---------------------------------------------------------

TOP_KEYS: Final = ("version", "events", "states", "tasks", "lifecycle", "schedules")
STATE_KEYS: Final = ("terminal", "tasks", "on", "description")
TASK_KEYS: Final = (
    "executor",
    "config",
    "needs",
    "retry",
    "timeout_seconds",
    "cancel",
    "description",
)
ACTION_KEYS: Final = ("action", "state")
RETRY_KEYS: Final = ("attempts", "backoff_seconds")
LIFECYCLE_KEYS: Final = ("ttl", "max_ttl", "expire_event", "warn_before", "extend_on")
SCHEDULE_KEYS: Final = ("name", "cron", "timezone", "event", "states")
# Statewright's own optional keys, reported by --strict (CloudSeam would refuse them).
EXTENSION_KEYS: Final = frozenset(
    {"needs", "retry", "timeout_seconds", "cancel", "description", "lifecycle", "schedules"}
)
# A task's `cancel`: what becomes of a run that keeps state (Terraform) when its state is
# left: `graceful` lets it finish (the default), `force` stops it.
CANCEL_MODES: Final = ("graceful", "force")

SPEC_VERSION: Final = "1.0"

# ---- bounds ---------------------------------------------------------------------------

MIN_ATTEMPTS: Final = 1
MAX_ATTEMPTS: Final = 10
MAX_BACKOFF_SECONDS: Final = 3600
MIN_TIMEOUT_SECONDS: Final = 1
# The engine stops a machine after this many NEXT transitions in a row with no task run
# and no external event between them (rule `next-cycle` finds such loops beforehand).
MAX_IDLE_NEXT_TRANSITIONS: Final = 100

# ---- references (``${{ ... }}`` in the fields an executor names) -----------------------

# What a reference may say: a task's output (optionally a dotted path into it), a
# metadata key, or one of the machine's own fields. Nothing is ever evaluated.
_REFERENCE_INSIDE = (
    r"\s*(?:"
    r"tasks\.(?P<task>[A-Za-z0-9][A-Za-z0-9_-]{0,63})\.outputs(?:\.(?P<path>[^\s.]+(?:\.[^\s.]+)*))?"
    r"|metadata\.(?P<key>\S+)"
    r"|machine\.(?P<field>id|spec|state)"
    r")\s*"
)
# One reference, anywhere in a string; its inside is checked by REFERENCE_BODY.
REFERENCE: Final = re.compile(r"\$\{\{(?P<body>.*?)\}\}", re.DOTALL)
REFERENCE_BODY: Final = re.compile(f"^{_REFERENCE_INSIDE}$")
# The same grammar for a JSON Schema (ECMA-262 regex, no named groups): a string whose
# every `${{` starts a well-formed reference.
REFERENCE_STRING_PATTERN: Final = (
    r"^(?:[^$]|\$(?!\{\{)|\$\{\{" + re.sub(r"\(\?P<\w+>", "(", _REFERENCE_INSIDE) + r"\}\})*$"
)
REFERENCE_FORMS: Final = (
    "${{ tasks.NAME.outputs.PATH }}",
    "${{ metadata.KEY }}",
    "${{ machine.id }}",
    "${{ machine.spec }}",
    "${{ machine.state }}",
)

# ---- rule ids -------------------------------------------------------------------------

# Every rule id the linter reports (executors add their own config rule ids, such as
# `lambda-config`); `needs` is an error for a missing task or a cycle and a warning for
# a needed task that never shares a state with its dependent.
ERROR_RULES: Final = (
    "yaml-syntax",
    "duplicate-key",
    "unsupported-version",
    "unknown-key",
    "type",
    "event-name",
    "state-name",
    "duplicate-event",
    "reserved-event",
    "missing-init",
    "no-terminal",
    "unknown-event",
    "unknown-action",
    "advance-target",
    "multiple-advance",
    "unknown-task",
    "duplicate-task",
    "task-name",
    "missing-next",
    "executor",
    "needs",
    "reference",
    "next-cycle",
    "lifecycle",
    "schedule",
)
WARNING_RULES: Final = (
    "unreachable-state",
    "unhandled-event",
    "unused-task",
    "no-path-to-terminal",
    "terminal-next",
    "empty-handler",
    "needs",
    "extension",
    "schedule",
)
