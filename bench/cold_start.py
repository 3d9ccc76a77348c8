"""Cold start: the dispatcher's import (and first-event init) time in fresh processes,
against a baseline that imports only what any Powertools-on-Lambda function would —
boto3, Powertools with its event handler, pydantic — and the layer's size.

Lambda ships the layer's bytecode with it, and the venv here is compiled by uv; the
statewright package and the handlers are compiled below before measuring, so neither
side pays for compiling source (this machine sets PYTHONDONTWRITEBYTECODE). The two
sides alternate, so a busy moment on the machine hits both alike; medians are
reported."""

from __future__ import annotations

import compileall
import os
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


def compile_sources() -> None:
    for folder in (PACKAGE, REPO / "functions"):
        compileall.compile_dir(folder, quiet=1)


def _fresh(code: str) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start probe failed:\n{done.stderr[-2000:]}")
    return [float(x) for x in done.stdout.split()]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEWRIGHT_", "AWS_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # read the compiled files, never write others
    return env


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
        **(layer_size() if layer else {}),
    }
