"""Statewright: lifecycle state machines (Machine 1.0 specs) on AWS or locally."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from statewright.local.control_plane import LocalControlPlane

__all__ = ["LocalControlPlane", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that the Lambda dispatcher never pays for the local mode.
    if name == "LocalControlPlane":
        from statewright.local.control_plane import LocalControlPlane

        return LocalControlPlane
    raise AttributeError(name)
