"""SpecCatalog: the specs a control plane serves, by name, and every spec a machine was
ever created with, by digest.

Specs are loaded through the linter, so a control plane never runs a spec that
``statewright validate`` would reject. Machines pin the digest they were created with
(docs/aws.md#the-table): the catalog stores each spec it hands to a new machine
under its digest and resolves digests through the store, caching them since a digest's
spec never changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from statewright.errors import ConfigurationError
from statewright.ports import Store
from statewright.spec.models import Spec

SPEC_SUFFIXES = (".yml", ".yaml")


class SpecCatalog:
    """``specs`` are served at once; a ``loader`` is called on the first need of the specs
    by name (creating a machine, listing specs), so a process that only moves existing
    machines never reads them: those resolve their pinned spec by digest."""

    def __init__(
        self,
        specs: Iterable[Spec] = (),
        *,
        loader: Callable[[], Iterable[Spec]] | None = None,
    ) -> None:
        self._by_name: dict[str, Spec] = {}
        self._by_digest: dict[str, Spec] = {}
        self._stored: set[str] = set()
        self._lock = threading.Lock()
        self._loader = loader
        self._load_lock = threading.Lock()
        self._add(specs)

    def _add(self, specs: Iterable[Spec]) -> None:
        for spec in specs:
            if spec.name in self._by_name:
                raise ConfigurationError(f"two specs are named {spec.name}")
            self._by_name[spec.name] = spec
            self._by_digest.setdefault(spec.digest, spec)

    def _load(self) -> None:
        """Run the loader once (a failed load raises, and is tried again next time)."""
        if self._loader is None:
            return
        with self._load_lock:
            if self._loader is not None:
                self._add(self._loader())
                self._loader = None

    @classmethod
    def from_folders(
        cls, folders: Iterable[Path | str], *, strict: bool = False, lazy: bool = False
    ) -> SpecCatalog:
        """Every ``*.yml``/``*.yaml`` file directly in each folder, linted (with ``lazy``,
        on first need). A spec with errors, a missing folder or two files with one name
        is a ConfigurationError."""
        paths = [Path(f) for f in folders]
        if lazy:
            return cls(loader=lambda: lint_folders(paths, strict=strict))
        return cls(lint_folders(paths, strict=strict))

    # ---- by name: what new machines are created from ----------------------------------

    def names(self) -> list[str]:
        self._load()
        return sorted(self._by_name)

    def specs(self) -> list[Spec]:
        """The loaded specs, sorted by name."""
        return [self._by_name[n] for n in self.names()]

    def get(self, name: str) -> Spec | None:
        self._load()
        return self._by_name.get(name)

    # ---- by digest: what running machines run -----------------------------------------

    def remember(self, spec: Spec, store: Store) -> None:
        """Store ``spec`` under its digest once per process (put_spec is idempotent)."""
        digest = spec.digest
        if digest in self._stored:
            return
        store.put_spec(spec)
        with self._lock:
            self._stored.add(digest)
            self._by_digest.setdefault(digest, spec)

    def resolve(self, digest: str, store: Store) -> Spec:
        """The spec a machine pinned. A loaded spec with that digest wins (its folder is
        the current one); otherwise the stored copy, cached."""
        spec = self._by_digest.get(digest)
        if spec is not None:
            return spec
        spec = store.get_spec(digest)
        if spec is None:
            # Not in the store: the specs not loaded yet may still hold it.
            self._load()
            spec = self._by_digest.get(digest)
        if spec is None:
            raise ConfigurationError(
                f"spec {digest} is not in the store; the machine's spec was lost"
            )
        with self._lock:
            self._by_digest.setdefault(digest, spec)
            self._stored.add(digest)
        return spec


def lint_folders(folders: Iterable[Path], *, strict: bool = False) -> list[Spec]:
    """The specs of every ``*.yml``/``*.yaml`` file directly in each folder, linted."""
    from statewright.spec.lint import lint_file

    specs: list[Spec] = []
    origin: dict[str, Path] = {}
    problems: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            raise ConfigurationError(f"specs folder {folder} does not exist or is not a folder")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in SPEC_SUFFIXES or not path.is_file():
                continue
            try:
                result = lint_file(path, strict=strict)
            except OSError as exc:
                raise ConfigurationError(f"cannot read spec {path}: {exc}") from exc
            if result.errors or result.spec is None:
                problems.extend(
                    f"{f.path}:{f.line}:{f.column}: {f.severity}: {f.message} [{f.rule}]"
                    for f in result.errors
                )
                if not result.errors:
                    problems.append(f"{path}: the spec could not be loaded")
                continue
            spec = result.spec
            if spec.name in origin:
                raise ConfigurationError(
                    f"two specs are named {spec.name}: {origin[spec.name]} and {path}; "
                    "spec names come from file names and must be unique"
                )
            origin[spec.name] = path
            specs.append(spec)
    if problems:
        raise ConfigurationError(
            "these specs have errors (run `statewright validate` on them):\n" + "\n".join(problems)
        )
    return specs
