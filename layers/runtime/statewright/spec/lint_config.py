"""A task's ``config``, validated by its executor's own pydantic model, as findings.

Everything inside ``config`` is the executor's business, so every problem there carries
the executor's rule id (``lambda-config``, ``terraform-config``, a plugin's own) and
points at the offending field: the key of a field that is not accepted, the value of
one that is wrong, and the mapping's key when a required field is missing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from statewright.executors.registry import ExecutorPlugin
from statewright.spec.loader import MappingNode, Node, SequenceNode, kind_of, to_python
from statewright.spec.wording import explain, shown

# Field descriptions a generic pydantic message cannot give.
_HINTS = {
    ("lambda-config", "name"): (
        "a Lambda function name (letters, digits, `-`, `_`), a partial ARN "
        "(`123456789012:function:NAME`) or a full ARN, optionally with `:VERSION` or `:ALIAS`"
    ),
}


def strip_extensions(config: Node | None) -> Any:
    """The config as plain data without its top-level ``x-`` keys (extensions are not
    the executor's to judge)."""
    if config is None:
        return {}
    data = to_python(config)
    if data is None:
        return {}
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    return data


def config_problems(
    plugin: ExecutorPlugin, config: Node | None, anchor: Node
) -> list[tuple[Node, str]]:
    """(node, message) for every problem of ``config``. ``anchor`` is where findings
    about a missing config point (the ``config`` key, else the task's key)."""
    try:
        plugin.validate_config(strip_extensions(config))
    except ValidationError as exc:
        schema = plugin.config_model.model_json_schema()
        return [_problem(plugin, schema, config, anchor, error) for error in exc.errors()]
    return []


@dataclass(frozen=True)
class _Located:
    """Where an error's location points in the YAML and in the executor's schema."""

    node: Node  # the offending value (or the deepest node that exists)
    key: Node  # its key (where "required" and "not accepted" findings point)
    field: str  # ``config.source.bucket``
    container_schema: dict[str, Any]  # the schema of the mapping holding the field
    sub_schema: dict[str, Any] | None  # the field's own schema, when known


def _problem(
    plugin: ExecutorPlugin,
    schema: dict[str, Any],
    config: Node | None,
    anchor: Node,
    error: Any,
) -> tuple[Node, str]:
    loc: tuple[Any, ...] = tuple(error["loc"])
    kind: str = error["type"]
    at = _locate(schema, config if config is not None else anchor, anchor, loc)
    hint = _HINTS.get((plugin.rule, str(loc[-1]) if loc else ""))
    if kind == "missing":
        needs = f": {hint}" if hint else ""
        return at.key, f"`{at.field}` is required by the {plugin.name} executor{needs}"
    if kind == "extra_forbidden":
        accepted = sorted(_properties(schema, at.container_schema))
        unknown = f"`{at.field}` is not a {plugin.name} config key"
        return at.key, explain(unknown, word=str(loc[-1]), candidates=accepted, accepted=accepted)
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        return _bad_tag(schema, at, error)
    return at.node, _bad_value(at, kind, error, hint)


def _locate(schema: dict[str, Any], node: Node, key: Node, loc: tuple[Any, ...]) -> _Located:
    """Follow ``loc`` through the YAML (and the schema beside it) as far as it exists."""
    path: list[str] = ["config"]
    container_schema = schema
    sub_schema: dict[str, Any] | None = schema
    for part in loc:
        child = _child(node, part)
        if child is None:
            # A discriminator tag pydantic adds to the location (``source.s3.bucket``)
            # or the name of a missing field.
            if sub_schema is not None and _is_tag(schema, sub_schema, part):
                sub_schema = _pick(schema, sub_schema, part)
                continue
            path.append(str(part))
            container_schema = sub_schema or {}
            sub_schema = None
            break
        key, node = child
        path.append(str(part))
        container_schema = sub_schema or {}
        sub_schema = _property(schema, sub_schema, part) if sub_schema else None
    return _Located(node, key, ".".join(path), container_schema, sub_schema)


def _bad_tag(schema: dict[str, Any], at: _Located, error: Any) -> tuple[Node, str]:
    """A tagged union (``source.type``) whose tag is missing or not one of its choices."""
    tags = ", ".join(_tags(schema, at.sub_schema or {}))
    tag_field = str(error.get("ctx", {}).get("discriminator", "'type'")).strip("'")
    target = _child(at.node, tag_field)
    if target is None:
        return at.key, f"`{at.field}` needs `{tag_field}`: one of {tags}"
    actual = shown(to_python(target[1]))
    return target[1], f"`{at.field}.{tag_field}` must be one of: {tags} (got {actual})"


def _bad_value(at: _Located, kind: str, error: Any, hint: str | None) -> str:
    got = shown(error.get("input"))
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return f"`{at.field}` must be a mapping, not {kind_of(at.node)}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"`{at.field}` must be {expected} (got {got})"
    if kind == "string_pattern_mismatch":
        wanted = hint or "a value of the accepted form"
        return f"`{at.field}` must be {wanted} (got {got})"
    if kind == "value_error":
        # A validator's own sentence, which names what it got; pydantic's "Value error, "
        # prefix adds nothing.
        return f"`{at.field}`: {error.get('ctx', {}).get('error', error['msg'])}"
    message: str = error["msg"]
    return f"`{at.field}`: {message[:1].lower()}{message[1:]} (got {got})"


def _child(node: Node, part: Any) -> tuple[Node, Node] | None:
    if isinstance(node, MappingNode):
        for k, v in node.pairs:
            if k.value == part and type(k.value) is type(part):
                return k, v
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.items):
        item = node.items[part]
        return item, item
    return None


# The executor's JSON schema tells what a location may hold, for "accepted here" lists.


def _deref(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(resolved, dict):
            return resolved
    return schema


def _alternatives(root: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _deref(root, schema)
    options = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(options, list):
        return [_deref(root, option) for option in options if isinstance(option, dict)]
    return [schema]


def _properties(root: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for option in _alternatives(root, schema):
        props = option.get("properties")
        if isinstance(props, dict):
            names.update(props)
    return names


def _property(root: dict[str, Any], schema: dict[str, Any], part: Any) -> dict[str, Any] | None:
    for option in _alternatives(root, schema):
        props = option.get("properties")
        if isinstance(props, dict) and isinstance(props.get(part), dict):
            return _deref(root, props[part])
    return None


def _tags(root: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    for option in _alternatives(root, schema):
        for prop in (option.get("properties") or {}).values():
            if isinstance(prop, dict) and isinstance(prop.get("const"), str):
                tags.append(prop["const"])
                break
    return tags


def _is_tag(root: dict[str, Any], schema: dict[str, Any], part: Any) -> bool:
    return isinstance(part, str) and part in _tags(root, schema)


def _pick(root: dict[str, Any], schema: dict[str, Any], tag: str) -> dict[str, Any]:
    for option in _alternatives(root, schema):
        for prop in (option.get("properties") or {}).values():
            if isinstance(prop, dict) and prop.get("const") == tag:
                return option
    return schema
