"""The ``store`` fixture: every test of the contract suite runs once per backend in
tests.contract.backends.BACKENDS, each time on a fresh, empty store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.ports import Store

from tests.contract.backends import BACKENDS, backend_params


@pytest.fixture(params=backend_params())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    factory = BACKENDS[request.param]
    with factory(tmp_path) as fresh:
        yield fresh
