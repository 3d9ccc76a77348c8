"""Store factories for the contract suite (local adapters)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from statewright.ports import Store

StoreFactory = Callable[[Path], AbstractContextManager[Store]]

LOCAL_BACKENDS: dict[str, StoreFactory] = {}
