"""Store factories for the contract suite (aws adapters)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from statewright.ports import Store

StoreFactory = Callable[[Path], AbstractContextManager[Store]]

AWS_BACKENDS: dict[str, StoreFactory] = {}
