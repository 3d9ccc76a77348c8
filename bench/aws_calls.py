"""Every AWS call the control plane makes, seen through botocore's event hooks.

The hooks are added to botocore's built-in handlers, which every new botocore session
registers (moto's mock works the same way), so the clients the dispatcher and the task
runner build for themselves report their calls without being told. Each call is
attributed to the *actor* the benchmark says is running (the dispatcher, the task
runner, the emulated Terraform build); calls outside an actor (the benchmark's own
setup) are not recorded."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.handlers

_PARAMS_KEY = "bench_params"


@dataclass(frozen=True)
class Call:
    """One AWS API call: who made it, what it asked and what it got back."""

    actor: str
    service: str  # botocore's endpoint prefix: dynamodb, events, lambda, codebuild, s3
    operation: str
    params: dict[str, Any]
    response: dict[str, Any]

    @property
    def kind(self) -> str:
        return f"{self.service}.{self.operation}"


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation the benchmark ran in-process, and how long it took."""

    actor: str
    seconds: float
    trigger: str  # api | bus | direct


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    actor: str | None = None
    _handlers: list[tuple[str, Any]] = field(default_factory=list)

    # ---- botocore hooks -------------------------------------------------------------

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self.actor is not None:
            context[_PARAMS_KEY] = (self.actor, dict(params))

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        seen = context.pop(_PARAMS_KEY, None)
        if seen is None:
            return
        actor, params = seen
        service = model.service_model.endpoint_prefix
        self.calls.append(Call(actor, service, model.name, params, dict(parsed)))

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallLog]:
        """Hooks in botocore's built-in handlers while the block runs; sessions created
        inside it (the handlers' own) report to this log."""
        self._handlers = [
            ("before-parameter-build", self._before),
            ("after-call", self._after),
        ]
        botocore.handlers.BUILTIN_HANDLERS.extend(self._handlers)
        try:
            yield self
        finally:
            for handler in self._handlers:
                botocore.handlers.BUILTIN_HANDLERS.remove(handler)

    # ---- attribution ----------------------------------------------------------------

    @contextlib.contextmanager
    def acting(self, actor: str) -> Iterator[None]:
        """Calls made in the block are ``actor``'s (no invocation is recorded)."""
        previous, self.actor = self.actor, actor
        try:
            yield
        finally:
            self.actor = previous

    def invoke(self, actor: str, fn: Any, *args: Any, trigger: str = "direct") -> Any:
        """Run one Lambda invocation of ``actor`` in-process, timing it."""
        with self.acting(actor):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                elapsed = time.perf_counter() - start
                self.invocations.append(Invocation(actor, elapsed, trigger))

    # ---- views ----------------------------------------------------------------------

    def kinds(self) -> Counter[str]:
        return Counter(call.kind for call in self.calls)

    def clear(self) -> None:
        self.calls.clear()
        self.invocations.clear()
