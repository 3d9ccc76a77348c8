"""A LocalControlPlane over the test specs (jobs) and the example (demo), called in
process exactly as its HTTP server would call the API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.local.control_plane import LocalControlPlane

from tests.integration.local.helpers import EXAMPLES, FIXTURES

TERRAFORM = str(Path(sys.executable).parent / "terraform")


def functions_folder(root: Path) -> Path:
    """The test functions and the example's, side by side."""
    folder = root / "functions"
    folder.mkdir()
    for source in [*(FIXTURES / "functions").glob("*.py"), *(EXAMPLES / "functions").glob("*.py")]:
        (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    root = tmp_path_factory.mktemp("plane")
    with LocalControlPlane(
        specs_dirs=[FIXTURES / "specs", EXAMPLES / "specs"],
        data_dir=root / "data",
        functions_dir=functions_folder(root),
        terraform_bin=TERRAFORM,
    ) as cp:
        yield cp
