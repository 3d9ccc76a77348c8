"""YAML loader for specs: every node keeps its line and column, scalars follow YAML 1.2.

Built on PyYAML's event parser (libyaml's when available) with a composer of our own
instead of ``yaml.compose``, because the rules of docs/spec.md#decisions differ from PyYAML's in
ways a composer decides:

* plain scalars resolve with the YAML 1.2 core schema, so ``on``/``off``/``yes``/``no``
  stay strings (the spec's own key is ``on``) and ``1.0`` is a float;
* a mapping that repeats a key is refused (``duplicate-key``, at the second key), while
  a key written beside a merge (``<<: *x``) overrides the merged one;
* an alias is never expanded into a copy: nodes are shared and each knows its expanded
  size, so a "billion laughs" document is refused after a few events instead of eating
  the machine; nesting depth and input size are capped the same way;
* an alias can only name a finished node, so no document is recursive.

Nothing here raises for any input text: every problem becomes a finding."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from statewright.spec.findings import Finding

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
# More than a 1 MiB text can hold without aliases (every node takes two characters).
MAX_NODES = 1_000_000
# Python refuses int("9" * 5000); a spec never needs numbers that long.
MAX_NUMBER_DIGITS = 1000

ScalarValue = str | int | float | bool | None

_CORE = "tag:yaml.org,2002:"
_INT_DEC = re.compile(r"[-+]?[0-9]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})


@dataclass(eq=False)
class Node:
    """A YAML node with its 1-based position; ``size`` counts the nodes it stands for
    once every alias inside it is expanded."""

    line: int
    column: int
    size: int = 1


@dataclass(eq=False)
class Scalar(Node):
    value: ScalarValue = None
    text: str = ""

    @property
    def name(self) -> str:
        """The scalar as a name: a string as it is, anything else as written
        (``404`` is the state name "404")."""
        return self.value if isinstance(self.value, str) else self.text


@dataclass(eq=False)
class SequenceNode(Node):
    items: list[Node] = field(default_factory=list)


@dataclass(eq=False)
class MappingNode(Node):
    """Keys are scalars (the composer refuses others). ``pairs`` is the mapping after
    merge keys are applied, explicit keys first."""

    pairs: list[tuple[Scalar, Node]] = field(default_factory=list)

    def get(self, key: str) -> Node | None:
        pair = self.pair(key)
        return pair[1] if pair else None

    def pair(self, key: str) -> tuple[Scalar, Node] | None:
        for k, v in self.pairs:
            if isinstance(k.value, str) and k.value == key:
                return k, v
        return None


@dataclass
class Loaded:
    """The document's root node (None when there is no usable document) and the
    findings met while loading."""

    root: Node | None
    findings: list[Finding]


def kind_of(node: Node) -> str:  # noqa: PLR0911 — one answer per node kind
    """How a message names the type of ``node`` ("a string", "a list"...)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    assert isinstance(node, Scalar)
    value = node.value
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return "a string"


def to_python(node: Node) -> Any:
    """Plain data (dict/list/scalars) for ``node``; safe because the composer already
    refused documents whose expansion is too large."""
    if isinstance(node, MappingNode):
        return {k.value: to_python(v) for k, v in node.pairs}
    if isinstance(node, SequenceNode):
        return [to_python(item) for item in node.items]
    assert isinstance(node, Scalar)
    return node.value


class _Fatal(Exception):
    """Stops composing: the finding is already recorded."""


def _resolve_plain(text: str) -> ScalarValue:  # noqa: C901, PLR0911 — YAML 1.2 core schema's table, a return per row
    """The YAML 1.2 core schema for an untagged plain scalar."""
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if len(text) <= MAX_NUMBER_DIGITS:
        if _INT_DEC.fullmatch(text):
            return int(text)
        if _INT_OCT.fullmatch(text):
            return int(text[2:], 8)
        if _INT_HEX.fullmatch(text):
            return int(text[2:], 16)
        if _FLOAT.fullmatch(text):
            return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _resolve_tagged(text: str, tag: str) -> ScalarValue:
    """A scalar with an explicit core tag (``!!int 3``); ValueError when it cannot be
    one or the tag is not one a spec may use."""
    short = tag.removeprefix(_CORE)
    if short == "str":
        return text
    wanted: dict[str, tuple[type, ...]] = {
        "int": (int,),
        "float": (float, int),
        "bool": (bool,),
        "null": (type(None),),
    }
    types = wanted.get(short)
    if not tag.startswith(_CORE) or types is None:
        raise ValueError(f"tag `{tag}` is not supported in a spec; remove it")
    value = _resolve_plain(text)
    if not isinstance(value, types) or (isinstance(value, bool) and short != "bool"):
        raise ValueError(f"`{text}` is not a valid !!{short}; remove the tag or fix the value")
    if short == "float" and isinstance(value, int):
        return float(value)
    return value


class _Composer:
    """Builds located nodes from parser events without recursion."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.anchors: dict[str, Node] = {}
        self.open_anchors: set[str] = set()
        # Frames of the collections being built: [node, anchor, pending key, merge sources]
        self.stack: list[_Frame] = []
        self.root: Node | None = None
        self.documents = 0

    def error(self, line: int, column: int, message: str, rule: str = "yaml-syntax") -> None:
        self.findings.append(Finding(self.path, line, column, "error", rule, message))

    def fatal(self, line: int, column: int, message: str) -> _Fatal:
        self.error(line, column, message)
        return _Fatal()

    def run(self, events: Iterator[Any]) -> None:
        for event in events:
            self.feed(event)

    def feed(self, event: Any) -> None:  # noqa: C901 — one branch per kind of parser event
        line, column = event.start_mark.line + 1, event.start_mark.column + 1
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.fatal(
                    line, column, "a spec is one YAML document; found a second one (`---`)"
                )
        elif isinstance(event, yaml.ScalarEvent):
            merge_key = event.tag is None and event.implicit[0] and event.value == "<<"
            self.add(self.scalar(event, line, column), event.anchor, merge_key=merge_key)
        elif isinstance(event, yaml.AliasEvent):
            self.add(self.alias(event.anchor or "", line, column), None)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self.check_collection_tag(event, line, column)
            if len(self.stack) >= MAX_DEPTH:
                raise self.fatal(
                    line, column, f"nesting deeper than {MAX_DEPTH} levels is not accepted"
                )
            node: Node = (
                SequenceNode(line, column)
                if isinstance(event, yaml.SequenceStartEvent)
                else MappingNode(line, column)
            )
            if event.anchor is not None:
                self.open_anchors.add(event.anchor)
            self.stack.append(_Frame(node, event.anchor))
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            frame = self.stack.pop()
            if isinstance(frame.node, MappingNode):
                self.finish_mapping(frame)
            else:
                assert isinstance(frame.node, SequenceNode)
                frame.node.size = 1 + sum(item.size for item in frame.node.items)
            if frame.anchor is not None:
                self.open_anchors.discard(frame.anchor)
            self.add(frame.node, frame.anchor)

    def scalar(self, event: Any, line: int, column: int) -> Scalar:
        text: str = event.value
        tag: str | None = event.tag
        value: ScalarValue
        if tag == "!" or (tag is None and not event.implicit[0]):
            value = text
        elif tag is None:
            value = _resolve_plain(text)
        else:
            try:
                value = _resolve_tagged(text, tag)
            except ValueError as exc:
                self.error(line, column, str(exc))
                value = text
        return Scalar(line, column, value=value, text=text)

    def check_collection_tag(self, event: Any, line: int, column: int) -> None:
        tag = event.tag
        allowed = {None, "!", _CORE + "map", _CORE + "seq"}
        if tag not in allowed:
            self.error(line, column, f"tag `{tag}` is not supported in a spec; remove it")

    def alias(self, anchor: str, line: int, column: int) -> Node:
        node = self.anchors.get(anchor)
        if node is not None:
            return node
        if anchor in self.open_anchors:
            self.error(line, column, f"alias *{anchor} refers to a node that contains it")
        else:
            self.error(line, column, f"alias *{anchor} has no anchor &{anchor} before it")
        return Scalar(line, column, value=None, text="")

    def add(self, node: Node, anchor: str | None, *, merge_key: bool = False) -> None:
        if anchor is not None:
            self.anchors[anchor] = node
        if node.size > MAX_NODES:
            raise self.fatal(
                node.line,
                node.column,
                f"this node expands to more than {MAX_NODES} nodes through aliases; "
                "a spec this large is refused",
            )
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        if isinstance(frame.node, SequenceNode):
            frame.node.items.append(node)
            return
        if frame.key is None:
            frame.key = node
            frame.key_is_merge = merge_key
            return
        frame.raw.append((frame.key, node, frame.key_is_merge))
        frame.key = None

    def finish_mapping(self, frame: _Frame) -> None:
        mapping = frame.node
        assert isinstance(mapping, MappingNode)
        explicit: dict[tuple[str, Any], int] = {}
        pairs: list[tuple[Scalar, Node]] = []
        sources: list[MappingNode] = []
        merge_seen = False
        for key, value, is_merge in frame.raw:
            if not isinstance(key, Scalar):
                self.error(key.line, key.column, "a mapping key must be a plain value")
                continue
            if is_merge:
                if merge_seen:
                    self.error(
                        key.line, key.column, "`<<` appears twice in this mapping", "duplicate-key"
                    )
                merge_seen = True
                sources.extend(self.merge_sources(key, value))
                continue
            identity = (type(key.value).__name__, key.value)
            if identity in explicit:
                first = pairs[explicit[identity]][0]
                self.error(
                    key.line,
                    key.column,
                    f"key `{key.text}` is already defined at line {first.line}; "
                    "each key may appear once in a mapping",
                    "duplicate-key",
                )
                # Keep linting with the later value, as PyYAML would have used it.
                pairs[explicit[identity]] = (key, value)
                continue
            explicit[identity] = len(pairs)
            pairs.append((key, value))
        for source in sources:
            for key, value in source.pairs:
                identity = (type(key.value).__name__, key.value)
                if identity not in explicit:
                    explicit[identity] = len(pairs)
                    pairs.append((key, value))
        mapping.pairs = pairs
        mapping.size = 1 + sum(k.size + v.size for k, v in pairs)

    def merge_sources(self, key: Scalar, value: Node) -> list[MappingNode]:
        """The mappings a ``<<`` value merges, earlier ones winning (YAML merge rules)."""
        if isinstance(value, MappingNode):
            return [value]
        if isinstance(value, SequenceNode) and all(isinstance(i, MappingNode) for i in value.items):
            return [i for i in value.items if isinstance(i, MappingNode)]
        # At the `<<` key: an aliased value's own position is its anchor's.
        self.error(
            key.line,
            key.column,
            "`<<` merges a mapping or a list of mappings (e.g. `<<: *defaults`), "
            f"not {kind_of(value)}",
        )
        return []


@dataclass(eq=False)
class _Frame:
    node: Node
    anchor: str | None
    key: Node | None = None
    key_is_merge: bool = False
    raw: list[tuple[Node, Node, bool]] = field(default_factory=list)


def _parser(text: str) -> Any:
    if yaml.__with_libyaml__:
        from yaml._yaml import CParser

        return CParser(text)
    return yaml.SafeLoader(text)  # pragma: no cover - libyaml ships in PyYAML's wheels


def _events(text: str) -> Iterator[Any]:
    parser = _parser(text)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def _line_of(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    line = before.count("\n") + 1
    return line, index - (before.rfind("\n") + 1) + 1


def load(text: str, path: str = "<string>") -> Loaded:  # noqa: PLR0911 — each refusal (size, encoding, syntax) returns its finding
    """Compose ``text`` into located nodes. The root is None when the document cannot
    be used at all; findings say why."""
    composer = _Composer(path)
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line, column = _line_of(text, exc.start)
        composer.error(line, column, "the text holds a character that is not valid Unicode")
        return Loaded(None, composer.findings)
    if len(encoded) > MAX_BYTES:
        composer.error(1, 1, f"the file is larger than {MAX_BYTES // 1024} KiB; refused")
        return Loaded(None, composer.findings)
    try:
        composer.run(_events(text))
    except _Fatal:
        return Loaded(None, composer.findings)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        parts = [p for p in (exc.problem, exc.context) if p]
        message = "; ".join(parts) or "invalid YAML"
        composer.error(line, column, f"invalid YAML: {message}")
        return Loaded(None, composer.findings)
    except yaml.reader.ReaderError as exc:
        # libyaml counts bytes, the pure-Python reader characters.
        index = len(encoded[: exc.position].decode("utf-8", "replace"))
        if not yaml.__with_libyaml__:  # pragma: no cover
            index = exc.position
        line, column = _line_of(text, index)
        composer.error(line, column, f"invalid YAML: {exc.reason} (character {exc.character!r})")
        return Loaded(None, composer.findings)
    except yaml.YAMLError as exc:
        composer.error(1, 1, f"invalid YAML: {exc}")
        return Loaded(None, composer.findings)
    root = composer.root
    if root is None:
        composer.error(1, 1, "the file is empty; a spec is a mapping with version, events, states")
    elif not isinstance(root, MappingNode):
        composer.error(
            root.line,
            root.column,
            f"the top level is {kind_of(root)}; a spec is a mapping with version, events, states",
        )
        root = None
    return Loaded(root, composer.findings)


def load_bytes(data: bytes, path: str) -> Loaded:
    """Decode a file's bytes (UTF-8, with or without BOM) and load them."""
    if len(data) > MAX_BYTES:
        finding = Finding(
            path, 1, 1, "error", "yaml-syntax", f"the file is larger than {MAX_BYTES // 1024} KiB"
        )
        return Loaded(None, [finding])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", "replace")
        line, column = _line_of(prefix, len(prefix))
        finding = Finding(
            path, line, column, "error", "yaml-syntax", "the file is not valid UTF-8 text"
        )
        return Loaded(None, [finding])
    return load(text, path)
