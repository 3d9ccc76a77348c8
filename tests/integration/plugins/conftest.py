"""The example plugin (examples/plugins/statewright-queue) installed for these tests.

An installed package is found through its distribution metadata: a ``*.dist-info``
folder on the import path whose ``entry_points.txt`` names the plugin object. The
fixture writes exactly that (what ``pip install`` writes) into a temporary folder and
puts it and the package's source on the path — for this process, and through
PYTHONPATH for the ``statewright`` processes the tests start — so the plugin is
discovered the way Statewright discovers any plugin, without touching the shared
virtualenv. Two test-only plugins with one mode each (lopsided.py) come along."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from statewright.executors.registry import ENTRY_POINT_GROUP, registry

# The AWS deployment under moto, for the dispatcher test.
from tests.integration.aws.deployment import (  # noqa: F401
    aws,
    deployment,
    table_from_template,
)

REPO = Path(__file__).resolve().parents[3]
PLUGIN_SOURCE = REPO / "examples" / "plugins" / "statewright-queue" / "src"
HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs"
SPECS_CLOUD_ONLY = HERE / "specs_cloud_only"
SPECS_LOCAL_ONLY = HERE / "specs_local_only"

ENTRY_POINTS = f"""\
[{ENTRY_POINT_GROUP}]
queue = statewright_queue:PLUGIN
cloud-only = tests.integration.plugins.lopsided:CLOUD_ONLY
desk-only = tests.integration.plugins.lopsided:LOCAL_ONLY
"""


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the distribution metadata of the installed plugin."""
    root = tmp_path_factory.mktemp("site")
    info = root / "statewright_queue-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: statewright-queue\nVersion: 0.1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    return root


@pytest.fixture
def plugin_env(site: Path) -> dict[str, str]:
    """The environment of a process that has the plugin installed."""
    path = [str(site), str(PLUGIN_SOURCE), str(REPO)]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin installed in this process (the registry read afresh before and after)."""
    monkeypatch.syspath_prepend(str(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(site))
    registry.cache_clear()
    yield
    registry.cache_clear()
