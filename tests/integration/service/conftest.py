from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.service.harness import Harness, make_harness
from tests.unit.engine.helpers import PREVIEW, RICH


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(tmp_path, [PREVIEW, RICH])
    try:
        yield harness
    finally:
        harness.store.close()
