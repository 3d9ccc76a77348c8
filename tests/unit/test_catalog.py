"""SpecCatalog: specs by name from folders (through the linter), specs by digest through
the store, cached."""

from __future__ import annotations

from pathlib import Path

import pytest
from statewright.catalog import SpecCatalog
from statewright.errors import ConfigurationError
from statewright.local.sqlite_store import SqliteStore
from statewright.spec.models import Spec

from tests.unit.engine.helpers import PREVIEW, RICH

SEED = """\
version: 1.0
events: [LAUNCH, DESTROY]
states:
  INIT:       {on: {LAUNCH: [{action: advance, state: PROVISION}]}}
  PROVISION:  {tasks: [db-setup], on: {NEXT: [{action: advance, state: RUN}]}}
  RUN:        {on: {DESTROY: [{action: advance, state: TEARDOWN}]}}
  TEARDOWN:   {terminal: true, tasks: [db-teardown]}
tasks:
  db-setup:    {executor: lambda, config: {name: db-setup}}
  db-teardown:
    executor: terraform
    config: {action: destroy, source: {type: s3, bucket: b, key: machines.tf}}
"""

BROKEN = """\
version: 1.0
events: [GO]
states:
  INIT: {on: {GO: [{action: advance, state: NOWHERE}]}}
  END: {termnial: true}
"""


class CountingStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.spec_reads = 0
        self.spec_writes = 0

    def get_spec(self, digest: str) -> Spec | None:
        self.spec_reads += 1
        return super().get_spec(digest)

    def put_spec(self, spec: Spec) -> None:
        self.spec_writes += 1
        super().put_spec(spec)


def test_specs_are_served_by_name() -> None:
    catalog = SpecCatalog([RICH, PREVIEW])
    assert catalog.names() == ["preview-env", "rich"]
    assert [s.name for s in catalog.specs()] == ["preview-env", "rich"]
    assert catalog.get("rich") is RICH
    assert catalog.get("missing") is None


def test_two_specs_with_one_name_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="two specs are named rich"):
        SpecCatalog([RICH, RICH])


def test_folders_load_every_yaml_file_through_the_linter(tmp_path: Path) -> None:
    specs, more = tmp_path / "specs", tmp_path / "more"
    specs.mkdir()
    more.mkdir()
    (specs / "preview-env.yml").write_text(SEED)
    (more / "other.YAML").write_text(SEED)
    (specs / "README.md").write_text("not a spec")
    catalog = SpecCatalog.from_folders([specs, str(more)])
    assert catalog.names() == ["other", "preview-env"]
    preview = catalog.get("preview-env")
    assert preview is not None
    assert preview.base_dir == str(specs.resolve())
    assert preview.states["PROVISION"].tasks == ["db-setup"]
    # the same document in two folders is one digest: moving specs changes no machine
    other = catalog.get("other")
    assert other is not None and preview.document() == {**other.document(), "name": "preview-env"}


def test_a_spec_with_errors_is_refused_with_its_findings(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(SEED)
    (tmp_path / "bad.yml").write_text(BROKEN)
    with pytest.raises(ConfigurationError) as caught:
        SpecCatalog.from_folders([tmp_path])
    message = str(caught.value)
    assert "statewright validate" in message
    assert f"{tmp_path / 'bad.yml'}:4:" in message and "[advance-target]" in message
    assert "[unknown-key]" in message and "good.yml" not in message


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        SpecCatalog.from_folders([tmp_path / "nope"])


def test_one_name_in_two_folders_is_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dup.yml").write_text(SEED)
    with pytest.raises(ConfigurationError, match="two specs are named dup"):
        SpecCatalog.from_folders([tmp_path / "a", tmp_path / "b"])


def test_digests_resolve_through_the_store_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "db.sqlite3")
    first = SpecCatalog([PREVIEW])
    first.remember(PREVIEW, store)
    first.remember(PREVIEW, store)
    assert store.spec_writes == 1
    # a loaded spec resolves without a read
    assert first.resolve(PREVIEW.digest, store) is PREVIEW
    assert store.spec_reads == 0
    # a control plane whose folder no longer has the spec reads it from the store, once
    later = SpecCatalog([RICH])
    resolved = later.resolve(PREVIEW.digest, store)
    assert resolved.document() == PREVIEW.document()
    later.resolve(PREVIEW.digest, store)
    assert store.spec_reads == 1
    assert later.get("preview-env") is None  # pinned machines run it; new ones cannot


def test_an_unknown_digest_is_a_configuration_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    with pytest.raises(ConfigurationError, match="not in the store"):
        SpecCatalog([]).resolve("sha256:" + "a" * 64, store)


def test_a_lazy_catalog_reads_its_folders_on_first_need(tmp_path: Path) -> None:
    (tmp_path / "seed.yml").write_text(SEED)
    store = CountingStore(tmp_path / "db.sqlite3")
    store.put_spec(PREVIEW)
    catalog = SpecCatalog.from_folders([tmp_path], lazy=True)
    (tmp_path / "later.yml").write_text(SEED)  # not read yet, so it will be served
    # A machine's pinned spec comes from the store without touching the folder ...
    assert catalog.resolve(PREVIEW.digest, store).name == "preview-env"
    # ... and the folder is read when a spec is needed by name.
    assert catalog.names() == ["later", "seed"]


def test_a_lazy_catalog_resolves_a_digest_from_its_folder_when_the_store_lacks_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "seed.yml").write_text(SEED)
    store = SqliteStore(tmp_path / "db.sqlite3")
    eager = SpecCatalog.from_folders([tmp_path])
    lazy = SpecCatalog.from_folders([tmp_path], lazy=True)
    digest = eager.specs()[0].digest
    assert lazy.resolve(digest, store).name == "seed"


def test_a_lazy_catalog_reports_a_broken_spec_when_it_loads(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text(BROKEN)
    catalog = SpecCatalog.from_folders([tmp_path], lazy=True)
    with pytest.raises(ConfigurationError, match="these specs have errors"):
        catalog.names()
