"""The runtime layer: pinned like uv.lock, built for arm64/CPython 3.13 without Docker,
holding every third-party module the Lambda code imports, cached between synths."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra import bundling
from infra.bundling import ensure_layer_dependencies, layer_asset_hash, tree_digest
from infra.paths import REPO_ROOT, MissingSourceError, SourcePaths
from tests.infra.conftest import Synthesized

REQUIREMENTS = REPO_ROOT / "layers" / "runtime" / "requirements.txt"
PACKAGE = REPO_ROOT / "layers" / "runtime" / "statewright"
# The Lambda Python runtime ships these (boto3 and its dependencies).
RUNTIME_PROVIDED = {
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "python-dateutil",
    "six",
}
CLI_ONLY = {"typer", "rich", "click", "shellingham", "markdown-it-py", "mdurl", "pygments"}
# Modules only the CLI and the local control plane import; Lambda code never does.
LOCAL_ONLY_PACKAGES = ("cli", "local")


def _pins() -> dict[str, tuple[str, set[str]]]:
    text = REQUIREMENTS.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pin = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        assert pin, f"not an exact pin: {line}"
        name, version = pin.groups()
        pins[name.lower()] = (version, set(re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)))
    return pins


def _lock() -> dict[str, dict[str, Any]]:
    document = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {p["name"]: p for p in document["package"]}


def _runtime_closure(lock: dict[str, dict[str, Any]]) -> set[str]:
    """statewright's runtime dependencies, transitively, as uv.lock resolves them."""
    closure: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [
        (d["name"], tuple(d.get("extra", ()))) for d in lock["statewright"]["dependencies"]
    ]
    while pending:
        name, extras = pending.pop()
        if name in closure or name in RUNTIME_PROVIDED | CLI_ONLY:
            continue
        closure.add(name)
        package = lock[name]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        pending += [(d["name"], tuple(d.get("extra", ()))) for d in deps]
    return closure


def test_requirements_pin_exactly_the_locked_runtime_closure() -> None:
    pins, lock = _pins(), _lock()
    assert set(pins) == _runtime_closure(lock)
    for name, (version, hashes) in pins.items():
        locked = lock[name]
        assert version == locked["version"], name
        locked_hashes = {w["hash"] for w in locked["wheels"]}
        assert hashes and hashes <= locked_hashes, name
    assert not set(pins) & (RUNTIME_PROVIDED | CLI_ONLY)


def _third_party_imports(paths: list[Path]) -> dict[str, Path]:
    """Top-level modules imported at run time (not under TYPE_CHECKING)."""
    found: dict[str, Path] = {}

    def visit(node: ast.AST, path: Path) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other, path)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.setdefault(alias.name.split(".")[0], path)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.setdefault(child.module.split(".")[0], path)
            visit(child, path)

    for path in paths:
        visit(ast.parse(path.read_text()), path)
    return {
        name: path
        for name, path in found.items()
        if name not in sys.stdlib_module_names and name != "statewright"
    }


def test_layer_asset_holds_the_package_and_every_module_lambda_code_imports(
    synth: Synthesized,
) -> None:
    _, layer = synth.one("AWS::Lambda::LayerVersion")
    python = synth.asset_dir(layer["Properties"]["Content"]["S3Key"]) / "python"
    package = python / "statewright"
    shipped = {p.relative_to(package) for p in package.rglob("*") if p.is_file()}
    in_tree = {
        p.relative_to(PACKAGE)
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert shipped == in_tree
    assert (package / "py.typed").is_file() and (package / "aws" / "table_layout.py").is_file()
    assert not list(python.rglob("__pycache__")), "bytecode of the build machine shipped"
    compiled = list((python / "pydantic_core").glob("*.so"))
    assert [p.name for p in compiled] == ["_pydantic_core.cpython-313-aarch64-linux-gnu.so"]
    assert compiled[0].read_bytes()[:4] == b"\x7fELF" and compiled[0].read_bytes()[18] == 0xB7
    for absent in ("boto3", "botocore", "typer", "rich"):
        assert not (python / absent).exists(), f"{absent} must not be in the layer"

    lambda_code = [
        p
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in LOCAL_ONLY_PACKAGES
    ] + list((REPO_ROOT / "functions").rglob("handler.py"))
    for module, where in _third_party_imports(lambda_code).items():
        in_layer = (python / module).is_dir() or (python / f"{module}.py").is_file()
        assert in_layer or module in {"boto3", "botocore"}, f"{module} ({where}) not in layer"


def test_layer_hash_follows_requirements_and_package_but_not_bytecode(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    shutil.copytree(
        REPO_ROOT / "layers" / "runtime" / "statewright",
        root / "layers" / "runtime" / "statewright",
    )
    shutil.copy(REQUIREMENTS, root / "layers" / "runtime" / "requirements.txt")
    paths = SourcePaths(root=root)
    before = layer_asset_hash(paths)
    (paths.package / "__pycache__").mkdir(exist_ok=True)
    (paths.package / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"junk")
    assert layer_asset_hash(paths) == before
    (paths.package / "engine.py").write_text((paths.package / "engine.py").read_text() + "\n# x\n")
    changed = layer_asset_hash(paths)
    assert changed != before
    paths.requirements.write_text(paths.requirements.read_text() + "\n# comment\n")
    assert layer_asset_hash(paths) != changed


def test_cached_wheels_are_reused_without_running_pip(
    synth: Synthesized, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's synth filled the cache; a second build must not download again.
    def no_pip(*_args: object, **_kwargs: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip ran although the wheels were cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    cached = ensure_layer_dependencies(SourcePaths())
    assert cached.parent == REPO_ROOT / "layers" / "runtime" / "build"
    assert (cached / ".complete").is_file()
    key = tree_digest(
        REQUIREMENTS,
        salt=f"{bundling._LAYOUT_VERSION}:{bundling.LAMBDA_PLATFORM}:{bundling.LAMBDA_PYTHON_VERSION}",
    )[:20]
    assert cached.name == f"deps-{key}"


def test_pip_failure_is_reported_with_its_output(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "layers" / "runtime").mkdir(parents=True)
    (root / "layers" / "runtime" / "requirements.txt").write_text("this is not a requirement ===\n")
    with pytest.raises(bundling.LayerBuildError, match="pip could not fetch"):
        ensure_layer_dependencies(SourcePaths(root=root))
    assert not list((root / "layers" / "runtime" / "build").glob("deps-*"))


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    paths = SourcePaths(root=tmp_path)
    with pytest.raises(MissingSourceError, match=r"requirements\.txt"):
        layer_asset_hash(paths)
    bundler = bundling.FunctionBundler(paths.handler_dir("dispatcher"), {"specs": paths.specs})
    with pytest.raises(MissingSourceError, match="dispatcher Lambda handler"):
        bundler.check()


def test_with_the_runtimes_python_the_layer_ships_its_bytecode_checked_by_hash(
    tmp_path: Path,
) -> None:
    # This machine's interpreter stands in for python3.13: the layer's bytecode is that
    # of whichever interpreter the bundler is given.
    out = tmp_path / "layer"
    bundling.LayerBundler(SourcePaths(), python=sys.executable).try_bundle(str(out), None)  # type: ignore[arg-type]
    python = out / "python"
    for module in (python / "statewright" / "engine.py", python / "pydantic" / "main.py"):
        data = Path(importlib.util.cache_from_source(str(module))).read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER, module
        # flags: hash-based (bit 0), source not checked (bit 1 clear): a read-only /opt
        # whose files carry the zip's times still uses it as it is
        assert int.from_bytes(data[4:8], "little") == 0b01, module
    tags = {p.name.split(".")[-2] for p in python.rglob("*.pyc")}
    assert tags == {sys.implementation.cache_tag}
    sources = {p.relative_to(python) for p in python.rglob("*.py")}
    compiled = {
        p.relative_to(python)
        for p in python.rglob("*.py")
        if Path(importlib.util.cache_from_source(str(p))).is_file()
    }
    assert compiled == sources


def test_the_layer_hash_names_the_bytecode_it_ships() -> None:
    paths = SourcePaths()
    without = layer_asset_hash(paths)
    assert layer_asset_hash(paths, bytecode="cpython-313") != without
    assert layer_asset_hash(paths, bytecode=None) == without
