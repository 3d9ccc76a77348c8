"""References in task configs: ``${{ tasks.NAME.outputs.PATH }}``, ``${{ metadata.KEY }}``,
``${{ machine.id }}``, ``${{ machine.spec }}``, ``${{ machine.state }}``.

They are replaced when an attempt starts. A string that is exactly one reference takes
the referenced JSON value with its type; a reference inside longer text is formatted
into it (strings as they are, other values as compact JSON). Nothing is evaluated:
there are no expressions, functions or escapes. The linter checks the syntax with
:func:`parse`; the service resolves with :func:`resolve`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from statewright.spec.rules import REFERENCE, REFERENCE_BODY, REFERENCE_FORMS


@dataclass(frozen=True)
class Reference:
    """One parsed reference. ``kind`` is ``tasks``, ``metadata`` or ``machine``; ``name``
    the task, the metadata key or the machine field; ``path`` the dotted path into a
    task's output (empty: the whole output)."""

    text: str
    kind: str
    name: str
    path: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        """The reference as a message names it: ``tasks.db.outputs.endpoint``."""
        if self.kind == "tasks":
            return ".".join(("tasks", self.name, "outputs", *self.path))
        return f"{self.kind}.{self.name}"


class ReferenceSyntaxError(ValueError):
    """A ``${{ ... }}`` that says something a reference cannot (or is never closed)."""


class UnresolvedReference(LookupError):
    """A reference with nothing to take its value from; the message names the field
    and the reference."""


@dataclass(frozen=True)
class Context:
    """What references resolve against: the outputs of the machine's succeeded tasks by
    name, its metadata, and its id, spec and current state."""

    outputs: Mapping[str, Any]
    metadata: Mapping[str, Any]
    machine_id: str
    spec: str
    state: str


def parse(text: str) -> list[Reference]:
    """The references in ``text``, in order. ReferenceSyntaxError for one that is not of
    an accepted form, or a ``${{`` never closed."""
    found: list[Reference] = []
    end = 0
    for match in REFERENCE.finditer(text):
        found.append(_reference(match.group(0), match.group("body")))
        end = match.end()
    if "${{" in text[end:]:
        raise ReferenceSyntaxError(
            "a `${{` is never closed with `}}`; write a reference as one of: "
            + ", ".join(REFERENCE_FORMS)
        )
    return found


def references_in(value: Any) -> list[tuple[str, Reference]]:
    """Every reference in a JSON value, with the dotted location of the string holding
    it (relative to ``value``). ReferenceSyntaxError names the location too."""
    found: list[tuple[str, Reference]] = []
    for where, text in _strings(value, ""):
        try:
            found.extend((where, ref) for ref in parse(text))
        except ReferenceSyntaxError as exc:
            raise ReferenceSyntaxError(f"{where}: {exc}") from None
    return found


def resolve(value: Any, context: Context, where: str = "") -> Any:
    """``value`` with every reference replaced (a new value; ``value`` is not changed).
    UnresolvedReference names the location and the reference that did not resolve."""
    if isinstance(value, Mapping):
        return {k: resolve(v, context, _join(where, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, context, _join(where, str(i))) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${{" not in value:
        return value
    matches = list(REFERENCE.finditer(value))
    if len(matches) == 1 and matches[0].span() == (0, len(value)):
        return _value(_reference(value, matches[0].group("body")), context, where)
    pieces: list[str] = []
    end = 0
    for match in matches:
        pieces.append(value[end : match.start()])
        found = _value(_reference(match.group(0), match.group("body")), context, where)
        pieces.append(found if isinstance(found, str) else _compact(found))
        end = match.end()
    pieces.append(value[end:])
    return "".join(pieces)


def _reference(text: str, body: str) -> Reference:
    match = REFERENCE_BODY.match(body)
    if match is None:
        raise ReferenceSyntaxError(
            f"`{text}` is not a reference Statewright knows; write one of: "
            + ", ".join(REFERENCE_FORMS)
            + " (nothing inside `${{ }}` is evaluated)"
        )
    if match.group("task") is not None:
        path = match.group("path")
        return Reference(text, "tasks", match.group("task"), tuple(path.split(".")) if path else ())
    if match.group("key") is not None:
        return Reference(text, "metadata", match.group("key"))
    return Reference(text, "machine", match.group("field"))


def _value(ref: Reference, context: Context, where: str) -> Any:
    def missing(why: str) -> UnresolvedReference:
        place = f"{where}: " if where else ""
        return UnresolvedReference(f"{place}`{ref.text}` does not resolve: {why}")

    if ref.kind == "machine":
        return {"id": context.machine_id, "spec": context.spec, "state": context.state}[ref.name]
    if ref.kind == "metadata":
        if ref.name not in context.metadata:
            keys = ", ".join(sorted(context.metadata)) or "none"
            raise missing(f"the machine has no metadata key {ref.name!r} (its keys: {keys})")
        return context.metadata[ref.name]
    if ref.name not in context.outputs:
        raise missing(f"task {ref.name} has no output (it has not succeeded on this machine)")
    current: Any = context.outputs[ref.name]
    walked = ["tasks", ref.name, "outputs"]
    for part in ref.path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise missing(f"{'.'.join(walked)} has no `{part}`")
        walked.append(part)
    return current


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _strings(v, _join(where, str(k)))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, _join(where, str(i)))]
    return []


def _join(where: str, part: str) -> str:
    return f"{where}.{part}" if where else part


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
