"""JSON Schema (draft-07, the draft yaml-language-server supports best) of a Machine 1.0
spec, for editors: completion, hover text and the checks a schema can express.

Cross-references (an `advance` to a state that exists, a declared event, a defined
task) are beyond JSON Schema; `statewright validate` checks those. Executor configs
come from the registered executors' own pydantic models, so a plugin's config gets
completion too."""

from __future__ import annotations

from typing import Any

from statewright.durations import DURATION_PATTERN, EXAMPLES
from statewright.executors.registry import registry
from statewright.spec.rules import (
    ACTIONS,
    CANCEL_MODES,
    DEFAULT_TIMEZONE,
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    MIN_ATTEMPTS,
    MIN_TIMEOUT_SECONDS,
    NAME_PATTERN,
    REFERENCE_FORMS,
    REFERENCE_STRING_PATTERN,
    SCHEDULE_NAME_PATTERN,
    SYSTEM_EVENTS,
    TASK_NAME_PATTERN,
)

DRAFT = "http://json-schema.org/draft-07/schema#"
_EXTENSIONS = {"^x-": {"description": "An extension key, ignored by Statewright."}}
_REFERENCES = "Strings may hold references, replaced when the attempt starts: " + ", ".join(
    REFERENCE_FORMS
)


def _executor_definitions() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Definitions of every executor's config and the if/then pairs choosing one."""
    definitions: dict[str, Any] = {}
    choices: list[dict[str, Any]] = []
    for name, plugin in sorted(registry().items()):
        prefix = f"{name}-"
        schema = plugin.config_model.model_json_schema(
            ref_template=f"#/definitions/{prefix}{{model}}"
        )
        for def_name, definition in schema.pop("$defs", {}).items():
            definitions[prefix + def_name] = definition
        for field in plugin.reference_fields:
            prop = schema.get("properties", {}).get(field)
            if isinstance(prop, dict):
                schema["properties"][field] = {
                    "description": _REFERENCES,
                    "type": ["object", "null"],
                    "additionalProperties": {"$ref": "#/definitions/value-with-references"},
                }
        schema.setdefault("patternProperties", {}).update(_EXTENSIONS)
        schema["description"] = f"Configuration of the `{name}` executor."
        definitions[f"{prefix}config"] = schema
        choices.append(
            {
                "if": {"properties": {"executor": {"const": name}}, "required": ["executor"]},
                "then": {"properties": {"config": {"$ref": f"#/definitions/{prefix}config"}}},
            }
        )
    return definitions, choices


def spec_schema() -> dict[str, Any]:
    """The schema as a JSON-ready dict."""
    executor_definitions, executor_choices = _executor_definitions()
    name = {"type": "string", "pattern": NAME_PATTERN}
    return {
        "$schema": DRAFT,
        "title": "Statewright Machine 1.0 spec",
        "description": "A lifecycle state machine: events, states and the tasks states run.",
        "type": "object",
        "required": ["version", "events", "states"],
        "properties": {
            "version": {
                "description": "Machine 1.0: write `1.0` (or `1`).",
                "enum": [1, "1", "1.0"],
            },
            "events": {
                "description": "The external events machines accept (not NEXT or FAILED).",
                "type": "array",
                "uniqueItems": True,
                "items": {
                    "allOf": [
                        {"$ref": "#/definitions/name"},
                        {"not": {"enum": list(SYSTEM_EVENTS)}},
                    ]
                },
            },
            "states": {
                "description": "States by name; `INIT` is where a machine starts.",
                "type": "object",
                "required": ["INIT"],
                "propertyNames": {"anyOf": [{"pattern": NAME_PATTERN}, {"pattern": "^x-"}]},
                "patternProperties": {NAME_PATTERN: {"$ref": "#/definitions/state"}, **_EXTENSIONS},
                "additionalProperties": False,
            },
            "tasks": {
                "description": "Tasks by name, listed by the states that run them.",
                "type": ["object", "null"],
                "propertyNames": {"anyOf": [{"pattern": TASK_NAME_PATTERN}, {"pattern": "^x-"}]},
                "patternProperties": _EXTENSIONS,
                "additionalProperties": {"$ref": "#/definitions/task"},
            },
            "lifecycle": {"$ref": "#/definitions/lifecycle"},
            "schedules": {
                "description": "Extension: events sent to the spec's machines on a cron.",
                "type": ["array", "null"],
                "items": {"$ref": "#/definitions/schedule"},
            },
        },
        "patternProperties": _EXTENSIONS,
        "additionalProperties": False,
        "definitions": {
            "name": {**name, "description": "Capital letters, digits, `_` and `-`."},
            "state": {
                "type": ["object", "null"],
                "properties": {
                    "terminal": {
                        "description": "When its tasks succeed, the machine is deleted.",
                        "type": "boolean",
                    },
                    "tasks": {
                        "description": "Tasks started on entering the state.",
                        "type": ["array", "null"],
                        "uniqueItems": True,
                        "items": {"type": "string"},
                    },
                    "on": {
                        "description": "Event handlers: declared events, NEXT and FAILED.",
                        "type": ["object", "null"],
                        "propertyNames": {"anyOf": [{"pattern": NAME_PATTERN}, {"pattern": "^x-"}]},
                        "patternProperties": {
                            NAME_PATTERN: {"$ref": "#/definitions/handler"},
                            **_EXTENSIONS,
                        },
                        "additionalProperties": False,
                    },
                    "description": {"type": "string"},
                },
                "patternProperties": _EXTENSIONS,
                "additionalProperties": False,
            },
            "handler": {
                "description": "Actions run in order; at most one `advance`.",
                "type": ["array", "null"],
                "items": {"$ref": "#/definitions/action"},
            },
            "action": {
                "type": "object",
                "required": ["action"],
                "properties": {
                    "action": {"enum": list(ACTIONS)},
                    "state": {**name, "description": "The state `advance` enters."},
                },
                "patternProperties": _EXTENSIONS,
                "additionalProperties": False,
                "if": {"properties": {"action": {"const": "advance"}}},
                "then": {"required": ["state"]},
                "else": {"not": {"required": ["state"]}},
            },
            "task": {
                "type": "object",
                "required": ["executor"],
                "properties": {
                    "executor": {"enum": sorted(registry())},
                    "config": {"type": ["object", "null"]},
                    "needs": {
                        "description": "Tasks of the same state that must succeed before "
                        "this one starts (needs outside the state are ignored).",
                        "type": ["array", "null"],
                        "uniqueItems": True,
                        "items": {"type": "string"},
                    },
                    "retry": {"$ref": "#/definitions/retry"},
                    "timeout_seconds": {
                        "description": "Default: "
                        + ", ".join(
                            f"{p.default_timeout_seconds} for {n}"
                            for n, p in sorted(registry().items())
                        )
                        + ".",
                        "type": "integer",
                        "minimum": MIN_TIMEOUT_SECONDS,
                    },
                    "cancel": {
                        "description": "When the state is left while a run that keeps state "
                        "(Terraform) is going: `graceful` (default) lets it finish, `force` "
                        "stops it.",
                        "enum": list(CANCEL_MODES),
                    },
                    "description": {"type": "string"},
                },
                "patternProperties": _EXTENSIONS,
                "additionalProperties": False,
                "allOf": executor_choices,
            },
            "retry": {
                "description": "Extension: attempts counts every attempt; the wait doubles.",
                "type": "object",
                "properties": {
                    "attempts": {
                        "type": "integer",
                        "minimum": MIN_ATTEMPTS,
                        "maximum": MAX_ATTEMPTS,
                    },
                    "backoff_seconds": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": MAX_BACKOFF_SECONDS,
                    },
                },
                "patternProperties": _EXTENSIONS,
                "additionalProperties": False,
            },
            "duration": {
                "description": f"Days, hours, minutes, seconds, largest first: {EXAMPLES}.",
                "type": "string",
                "pattern": DURATION_PATTERN,
            },
            "lifecycle": {
                "description": "Extension: machines expire `ttl` after creation unless "
                "extended; `expire_event` is sent to them then.",
                "type": "object",
                "required": ["ttl", "expire_event"],
                "properties": {
                    "ttl": {"$ref": "#/definitions/duration"},
                    "max_ttl": {
                        "description": "The most a create or an extension may ask for "
                        "(default: ttl).",
                        "$ref": "#/definitions/duration",
                    },
                    "expire_event": {**name, "description": "A declared event."},
                    "warn_before": {
                        "description": "`Machine Expiring` notices this long before expiry.",
                        "type": "array",
                        "uniqueItems": True,
                        "items": {"$ref": "#/definitions/duration"},
                    },
                    "extend_on": {
                        "description": "Accepted events that restart the ttl from now.",
                        "type": "array",
                        "items": name,
                    },
                },
                "patternProperties": _EXTENSIONS,
                "additionalProperties": False,
            },
            "schedule": {
                "type": "object",
                "required": ["name", "cron", "event"],
                "properties": {
                    "name": {"type": "string", "pattern": SCHEDULE_NAME_PATTERN},
                    "cron": {
                        "description": "Five fields: minute hour day-of-month month "
                        "day-of-week; one of the day fields stays `*`.",
                        "type": "string",
                        "pattern": r"^\s*\S+(\s+\S+){4}\s*$",
                    },
                    "timezone": {
                        "description": f"An IANA time zone (default {DEFAULT_TIMEZONE}).",
                        "type": "string",
                    },
                    "event": {**name, "description": "A declared event."},
                    "states": {
                        "description": "Only machines in these states (default: every "
                        "state that handles the event).",
                        "type": "array",
                        "minItems": 1,
                        "items": name,
                    },
                },
                "patternProperties": _EXTENSIONS,
                "additionalProperties": False,
            },
            "value-with-references": {
                "description": _REFERENCES,
                "anyOf": [
                    {"type": "string", "pattern": REFERENCE_STRING_PATTERN},
                    {"type": ["number", "boolean", "null"]},
                    {"type": "array", "items": {"$ref": "#/definitions/value-with-references"}},
                    {
                        "type": "object",
                        "additionalProperties": {"$ref": "#/definitions/value-with-references"},
                    },
                ],
            },
            **executor_definitions,
        },
    }
