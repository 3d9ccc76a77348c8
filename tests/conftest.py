"""Session-wide setup, in the controller only (not in pytest-xdist's workers)."""

from __future__ import annotations

import pytest

from tests.reliability.figures import start_run


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        # Before any worker starts: the reliability figures are this run's alone.
        start_run()
