"""Plain dataclasses with pydantic at their edges.

The engine builds and changes machines, task records and history entries on every
decision. As pydantic models each of those steps validates (a model's constructor checks
every field, each attribute set goes through pydantic's ``__setattr__``): over a third
of a decision's instructions went there, checking values the engine itself had just
made (callgrind, bench/engine.py's lifecycle: 826k instructions with models, 517k
without). So these types are plain dataclasses, and pydantic validates them where data
comes from outside — a store's row, a test's dict — through the methods of
:class:`Row`. They carry pydantic's names (``model_validate``, ``model_dump_json`` ...),
so a row reads, loads and dumps like every other model of the code base
(docs/architecture.md, "What is validated where")."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, cast

from pydantic import BeforeValidator, ConfigDict, TypeAdapter


class Row:
    """Pydantic's loading and dumping for a dataclass (``@dataclass(kw_only=True)``
    subclasses). A ``row_upgrade`` staticmethod, when the class has one, turns rows
    stored by earlier versions into today's shape before they are validated."""

    __slots__ = ()
    # Applies when a row is loaded: a stored field this version does not know is an
    # error, not silently dropped.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """``data`` (a dict, or an instance) checked and converted; ValidationError if
        it is not a valid row."""
        return cast(Self, _adapter(cls).validate_python(data))

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        return cast(Self, _adapter(cls).validate_json(data))

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] = "python",
        include: set[str] | None = None,
        exclude: set[str] | None = None,
        exclude_none: bool = False,
    ) -> dict[str, Any]:
        dumped = _adapter(type(self)).dump_python(
            self, mode=mode, include=include, exclude=exclude, exclude_none=exclude_none
        )
        return cast(dict[str, Any], dumped)

    def model_dump_json(
        self,
        *,
        include: set[str] | None = None,
        exclude: set[str] | None = None,
        exclude_none: bool = False,
    ) -> str:
        dumped = _adapter(type(self)).dump_json(
            self, include=include, exclude=exclude, exclude_none=exclude_none
        )
        return dumped.decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update``'s fields replaced (not validated, as pydantic's isn't;
        an unknown field name is a TypeError); ``deep`` copies every value too."""
        # A new instance given this one's field values: dataclasses.replace (which runs
        # __init__ again) and copy.copy (__reduce_ex__ and a reconstruction) cost several
        # times this, and the engine and the store copy a machine on every event.
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        for name, value in (update or {}).items():
            if name not in cast(Any, self).__dataclass_fields__:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(copied, name, value)
        return copy.deepcopy(copied) if deep else copied


# One TypeAdapter per row class, built on first use (building one compiles a validator).
_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        upgrade: Callable[[Any], Any] | None = getattr(cls, "row_upgrade", None)
        target: Any = cls if upgrade is None else Annotated[cls, BeforeValidator(upgrade)]
        adapter = _ADAPTERS[cls] = TypeAdapter(target)
    return adapter
