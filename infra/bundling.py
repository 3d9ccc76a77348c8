"""Lambda code bundled without Docker (docs/architecture.md#bundling).

CDK calls ``try_bundle`` of an ``ILocalBundling`` before it would start a container; ours
always bundle (or raise), so Docker is never needed.

The layer's third-party wheels are fetched once per ``requirements.txt`` into
``layers/runtime/build/deps-<hash>/`` and reused by every later synth (and every test);
the ``statewright`` package is copied fresh each time, which is cheap.

Bytecode (docs/architecture.md#bundling): Lambda mounts the layer read-only at ``/opt``,
so the functions' Python can neither write the bytecode it compiles nor use any but its
own version's. Where the build machine has the runtime's interpreter (``python3.13``),
the layer ships bytecode compiled by it (the wheels' once, into
``deps-<hash>-<cache tag>/``; the package's at each bundle); elsewhere it ships sources
and every cold start compiles them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import aws_cdk as cdk
import jsii

from infra.paths import REPO_ROOT, MissingSourceError, SourcePaths, require_file

LAMBDA_PYTHON_VERSION = "3.13"
LAMBDA_PLATFORM = "manylinux2014_aarch64"
# Bumped when the way the layer is assembled changes, so old caches are not reused.
_LAYOUT_VERSION = "1"
_SKIPPED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_KEPT_DEPS_CACHES = 3


class LayerBuildError(Exception):
    """pip could not produce the layer's wheels, or the runtime's Python not its bytecode."""


def runtime_python() -> str | None:
    """The Lambda runtime's own interpreter on this machine, if it has one: the only
    Python whose bytecode the functions can use. A ``python3.13`` that does not run as
    3.13 (a version manager's shim for a version it has not installed) is none."""
    found = shutil.which(f"python{LAMBDA_PYTHON_VERSION}")
    if found is None:
        return None
    done = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found if done.stdout.strip() == LAMBDA_PYTHON_VERSION else None


def bytecode_tag(python: str) -> str:
    """The interpreter's bytecode tag (``cpython-313``): the name its ``.pyc`` files carry."""
    done = subprocess.run(
        [python, "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise LayerBuildError(f"{python} could not be run to compile the layer: {done.stderr}")
    return done.stdout.strip()


def compile_bytecode(folder: Path, python: str) -> None:
    """Every module under ``folder`` compiled by ``python`` into ``__pycache__``, checked
    by hash and never against its source: the layer's files are unzipped with times that
    say nothing, and they never change once deployed."""
    command = [python, "-m", "compileall", "-q", "-j", "0"]
    command += ["--invalidation-mode", "unchecked-hash", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LayerBuildError(
            f"{python} could not compile the layer's modules in {folder} "
            f"(exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}"
        )


def _source_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_NAMES)
        for name in sorted(filenames):
            if not name.endswith(_SKIPPED_SUFFIXES):
                files.append(Path(dirpath) / name)
    return files


def tree_digest(*roots: Path, salt: str = "") -> str:
    """SHA-256 over the relative paths and contents of every bundled file under roots."""
    digest = hashlib.sha256(salt.encode())
    for root in roots:
        paths = [root] if root.is_file() else _source_files(root)
        for path in paths:
            rel = path.name if root.is_file() else path.relative_to(root).as_posix()
            digest.update(f"\0{root.name}/{rel}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _copy_file(src: str, dst: str) -> None:
    # Hard links make copying the 25 MB of wheels into cdk.out nearly free; across
    # file systems they are not possible and a real copy is made.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_tree(src: Path, dst: Path, *, link: bool = False, bytecode: bool = False) -> None:
    """``bytecode``: keep ``__pycache__`` (the runtime's, in a compiled wheels cache)."""
    skipped = () if bytecode else (*_SKIPPED_NAMES, *(f"*{s}" for s in _SKIPPED_SUFFIXES))
    shutil.copytree(
        src,
        dst,
        ignore=shutil.ignore_patterns(*skipped),
        copy_function=_copy_file if link else shutil.copy2,
        dirs_exist_ok=True,
    )


def pip_command() -> list[str]:
    """A pip to run: this interpreter's, else the one `make install` bootstraps uv with."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for candidate in (REPO_ROOT / ".tools" / "bin" / "pip", shutil.which("pip3")):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    raise LayerBuildError(
        "no pip found to build the Lambda layer: run `make install` (it creates .tools/bin/pip) "
        "or install pip for this interpreter"
    )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        # Parallel test workers and synths share the cache; one builds, the others wait.
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune(cache: Path, keep: Path) -> None:
    old = sorted(
        (p for p in cache.glob("deps-*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in old[_KEPT_DEPS_CACHES - 1 :]:
        shutil.rmtree(stale, ignore_errors=True)


def _build_once(
    cache: Path, target: Path, build: Callable[[Path], str], *, prune: bool = False
) -> None:
    """Build ``target`` in the cache once, whichever process gets there first:
    ``build(staging)`` fills a staging folder and returns the note its ``.complete``
    marker keeps; the folder then replaces ``target`` (and, with ``prune``, old
    dependency caches go). A failed build leaves no staging folder behind."""
    if (target / ".complete").is_file():
        return
    with _locked(cache / ".lock"):
        if (target / ".complete").is_file():
            return
        staging = cache / f"staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            note = build(staging)
        except LayerBuildError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (staging / ".complete").write_text(note)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        if prune:
            _prune(cache, keep=target)


def ensure_layer_dependencies(paths: SourcePaths) -> Path:
    """The directory holding the layer's wheels (``python/...``), built on first use."""
    requirements = require_file(paths.requirements, "the layer's requirements.txt")
    key = tree_digest(
        requirements, salt=f"{_LAYOUT_VERSION}:{LAMBDA_PLATFORM}:{LAMBDA_PYTHON_VERSION}"
    )[:20]
    target = paths.layer_cache / f"deps-{key}"

    def install(staging: Path) -> str:
        command = [
            *pip_command(),
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-compile",
            # requirements.txt pins the complete closure (boto3 comes with the runtime).
            "--no-deps",
            "--platform",
            LAMBDA_PLATFORM,
            "--only-binary=:all:",
            "--python-version",
            LAMBDA_PYTHON_VERSION,
            "--implementation",
            "cp",
            "--target",
            str(staging / "python"),
            "-r",
            str(requirements),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LayerBuildError(
                f"pip could not fetch the layer's wheels for {LAMBDA_PLATFORM}, Python "
                f"{LAMBDA_PYTHON_VERSION} (exit {result.returncode}):\n{result.stderr[-4000:]}"
            )
        # Console scripts and bytecode of the build machine's Python are dead weight.
        shutil.rmtree(staging / "python" / "bin", ignore_errors=True)
        for cache_dir in list((staging / "python").rglob("__pycache__")):
            shutil.rmtree(cache_dir, ignore_errors=True)
        return " ".join(command[len(pip_command()) :]) + "\n"

    _build_once(paths.layer_cache, target, install, prune=True)
    return target


def compiled_layer_dependencies(paths: SourcePaths, python: str) -> Path:
    """The layer's wheels with bytecode compiled by ``python``, built once per
    requirements and interpreter from the wheels' cache (hard links, plus the bytecode)."""
    deps = ensure_layer_dependencies(paths)
    target = deps.with_name(f"{deps.name}-{bytecode_tag(python)}")

    def compile_copy(staging: Path) -> str:
        copy_tree(deps / "python", staging / "python", link=True)
        compile_bytecode(staging / "python", python)
        return f"compiled by {python}\n"

    _build_once(paths.layer_cache, target, compile_copy)
    return target


def layer_asset_hash(paths: SourcePaths, *, bytecode: str | None = None) -> str:
    """Changes whenever the layer's content would: requirements, package files, or the
    bytecode tag it ships (None: sources only)."""
    require_file(paths.requirements, "the layer's requirements.txt")
    if not paths.package.is_dir():
        raise MissingSourceError(f"the statewright package not found at {paths.package}")
    compiled = f":{bytecode}" if bytecode else ""
    return tree_digest(
        paths.requirements,
        paths.package,
        salt=f"{_LAYOUT_VERSION}:{LAMBDA_PLATFORM}:{LAMBDA_PYTHON_VERSION}{compiled}",
    )


def as_local_bundling(bundler: LayerBundler | FunctionBundler) -> cdk.ILocalBundling:
    # jsii hands try_bundle the options as one positional struct, not the keywords the
    # generated protocol declares, so the classes cannot match it for a type checker.
    return typing.cast(cdk.ILocalBundling, bundler)


@jsii.implements(cdk.ILocalBundling)
class LayerBundler:
    """``python/`` = pinned wheels for arm64 Lambda + the ``statewright`` package, with
    bytecode compiled by ``python`` (the runtime's interpreter) when given."""

    def __init__(self, paths: SourcePaths, *, python: str | None = None) -> None:
        self._paths = paths
        self._python = python

    def try_bundle(self, output_dir: str, _options: cdk.BundlingOptions) -> bool:
        out = Path(output_dir) / "python"
        if self._python is None:
            copy_tree(ensure_layer_dependencies(self._paths) / "python", out, link=True)
            copy_tree(self._paths.package, out / "statewright")
            return True
        deps = compiled_layer_dependencies(self._paths, self._python)
        copy_tree(deps / "python", out, link=True, bytecode=True)
        copy_tree(self._paths.package, out / "statewright")
        compile_bytecode(out / "statewright", self._python)
        return True


@jsii.implements(cdk.ILocalBundling)
class FunctionBundler:
    """A handler directory, plus extra directories copied beside ``handler.py``."""

    def __init__(self, source: Path, extras: Mapping[str, Path] | None = None) -> None:
        self._source = source
        self._extras = dict(extras or {})

    def check(self) -> None:
        require_file(self._source / "handler.py", f"the {self._source.name} Lambda handler")
        for name, extra in self._extras.items():
            if not extra.is_dir():
                raise MissingSourceError(f"{name}/ to ship with {self._source.name} not found")

    def try_bundle(self, output_dir: str, _options: cdk.BundlingOptions) -> bool:
        self.check()
        out = Path(output_dir)
        copy_tree(self._source, out)
        for name, extra in self._extras.items():
            copy_tree(extra, out / name)
        return True
