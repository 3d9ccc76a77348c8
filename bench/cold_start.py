"""Cold start: the dispatcher's import (and first-event init) time in fresh processes,
against a baseline that imports only what any Powertools-on-Lambda function would —
boto3, Powertools with its event handler, pydantic — and the layer's size.

In the repository (``ratio``): the venv here is compiled by uv, and the statewright
package and the handlers are compiled below before measuring, so neither side pays for
compiling source (this machine sets PYTHONDONTWRITEBYTECODE).

As deployed (``as_deployed_ratio``): the way Lambda loads its code. The layer's modules
— the statewright package and each distribution of ``requirements.txt``, this machine's
build of it — are copied into a read-only ``opt/python``, compiled by
``infra.bundling.compile_bytecode`` as the layer build does with the runtime's
interpreter, and the dispatcher's folder into a read-only ``task`` (functions ship
without bytecode); imports run with PYTHONDONTWRITEBYTECODE, so nothing is written and
whatever has no bytecode is compiled in memory at every start, as on Lambda. The same
copy without the layer's bytecode gives ``without_bytecode_ratio``: a layer built
where no Python of the runtime's version is found. boto3 comes from the venv, as from
the Lambda runtime.

The sides alternate, so a busy moment on the machine hits them alike; medians are
reported."""

from __future__ import annotations

import compileall
import importlib.metadata
import os
import re
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "layers" / "runtime" / "statewright"

BASELINE_IMPORTS = "boto3, pydantic, aws_lambda_powertools, aws_lambda_powertools.event_handler"
BASELINE = """
import time
start = time.perf_counter()
import boto3, pydantic, aws_lambda_powertools, aws_lambda_powertools.event_handler
print(time.perf_counter() - start)
"""

DISPATCHER = """
import os, time
start = time.perf_counter()
import functions.dispatcher.handler as handler
imported = time.perf_counter()
os.environ.update({name: "bench" for name in (
    "STATEWRIGHT_ENV", "STATEWRIGHT_TABLE", "STATEWRIGHT_BUS", "STATEWRIGHT_TASK_RUNNER",
    "STATEWRIGHT_TERRAFORM_PROJECT", "STATEWRIGHT_STATE_BUCKET", "STATEWRIGHT_SCHEDULE_GROUP",
    "STATEWRIGHT_SCHEDULER_ROLE_ARN", "STATEWRIGHT_DISPATCHER_ARN")})
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
from statewright.aws.wiring import runtime
runtime(handler_dir=handler.HERE)  # what the first event builds before its first AWS call
print(imported - start, time.perf_counter() - start)
"""


# The same probe as Lambda runs it: the function's folder is the working directory.
DEPLOYED_DISPATCHER = DISPATCHER.replace(
    "import functions.dispatcher.handler as handler", "import handler"
)


def compile_sources() -> None:
    for folder in (PACKAGE, REPO / "functions"):
        compileall.compile_dir(folder, quiet=1)


def _fresh(code: str, *, cwd: Path = REPO, path: tuple[Path, ...] = ()) -> list[float]:
    """Run ``code`` in a fresh interpreter (``path`` first on its sys.path)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(path),
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe failed:\n{done.stderr[-2000:]}")
    return [float(x) for x in done.stdout.split()]


def _env(path: tuple[Path, ...] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEWRIGHT_", "AWS_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # read the compiled files, never write others
    env.pop("PYTHONPATH", None)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    return env


def _layer_distributions() -> list[str]:
    """The distributions the layer ships: the names pinned in its requirements.txt."""
    text = (REPO / "layers" / "runtime" / "requirements.txt").read_text()
    return re.findall(r"^([A-Za-z0-9._-]+)==", text, flags=re.MULTILINE)


def deployed_copy(root: Path, *, bytecode: bool) -> tuple[Path, Path]:
    """``opt/python`` (the layer) and ``task`` (the dispatcher's folder) under ``root``,
    read-only, with the layer's bytecode compiled as the layer build compiles it."""
    from infra.bundling import compile_bytecode, copy_tree

    layer, task = root / "opt" / "python", root / "task"
    for name in _layer_distributions():
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if "__pycache__" in file.parts or file.parts[0] == ".." or file.suffix == ".pyc":
                continue
            target = layer / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)
    copy_tree(PACKAGE, layer / "statewright")
    copy_tree(REPO / "functions" / "dispatcher", task)
    if bytecode:
        compile_bytecode(layer, sys.executable)
    _read_only(root)
    return layer, task


def _read_only(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def as_deployed(rounds: int) -> dict[str, float]:
    """Medians of the baseline and of the dispatcher's import, as Lambda loads them,
    with and without the layer's bytecode; the three alternate."""
    with tempfile.TemporaryDirectory(prefix="statewright-bench-opt-") as tmp:
        compiled = deployed_copy(Path(tmp) / "compiled", bytecode=True)
        sources = deployed_copy(Path(tmp) / "sources", bytecode=False)
        try:
            probes = {
                "baseline": lambda: _fresh(BASELINE, cwd=compiled[1], path=compiled)[0],
                "compiled": lambda: _fresh(DEPLOYED_DISPATCHER, cwd=compiled[1], path=compiled)[0],
                "sources": lambda: _fresh(DEPLOYED_DISPATCHER, cwd=sources[1], path=sources)[0],
            }
            times: dict[str, list[float]] = {name: [] for name in probes}
            for probe in probes.values():
                probe()  # warm the page cache
            for _ in range(rounds):
                for name, probe in probes.items():
                    times[name].append(probe())
        finally:
            _writable(Path(tmp))
    base = statistics.median(times["baseline"])
    compiled_s = statistics.median(times["compiled"])
    sources_s = statistics.median(times["sources"])
    return {
        "as_deployed_baseline_import_s": base,
        "as_deployed_dispatcher_import_s": compiled_s,
        "as_deployed_ratio": compiled_s / base,
        "without_bytecode_dispatcher_import_s": sources_s,
        "without_bytecode_ratio": sources_s / base,
    }


def build_machine_has_runtime_python() -> bool:
    """Whether a layer built on this machine ships bytecode (it has python3.13)."""
    from infra.bundling import runtime_python

    return runtime_python() is not None


def layer_size() -> dict[str, float]:
    """The layer as the CDK app bundles it (infra.bundling.LayerBundler): unzipped, and
    zipped as Lambda stores it."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.bundling import LayerBundler
    from infra.paths import SourcePaths

    with tempfile.TemporaryDirectory(prefix="statewright-bench-layer-") as tmp:
        out = Path(tmp) / "layer"
        LayerBundler(SourcePaths()).try_bundle(str(out), None)  # type: ignore[arg-type]
        files = [p for p in out.rglob("*") if p.is_file()]
        unzipped = sum(p.stat().st_size for p in files)
        archive = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for path in files:
                z.write(path, path.relative_to(out).as_posix())
        zipped = archive.stat().st_size
    return {"layer_mb": unzipped / 1e6, "layer_zip_mb": zipped / 1e6, "layer_files": len(files)}


def run(*, rounds: int = 12, layer: bool = True) -> dict[str, Any]:
    """``layer=False`` leaves out the layer's size (building it starts the CDK's jsii
    runtime, seconds the smoke test does without)."""
    compile_sources()
    _fresh(BASELINE)  # warm the page cache for both sides
    _fresh(DISPATCHER)
    baseline: list[float] = []
    imports: list[float] = []
    inits: list[float] = []
    for _ in range(rounds):
        baseline.append(_fresh(BASELINE)[0])
        imported, initialized = _fresh(DISPATCHER)
        imports.append(imported)
        inits.append(initialized)
    base = statistics.median(baseline)
    dispatcher = statistics.median(imports)
    return {
        "rounds": rounds,
        "dispatcher_import_s": dispatcher,
        "dispatcher_init_s": statistics.median(inits),
        "baseline_import_s": base,
        "ratio": dispatcher / base,
        "baseline_imports": BASELINE_IMPORTS,
        **as_deployed(rounds),
        "build_machine_has_runtime_python": build_machine_has_runtime_python(),
        **(layer_size() if layer else {}),
    }
