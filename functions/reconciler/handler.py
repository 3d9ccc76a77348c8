"""The reconciler Lambda (on a schedule): statewright.aws.reconciler."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from statewright.aws.observability import METRICS, logger, run
from statewright.aws.reconciler import reconcile
from statewright.aws.wiring import runtime

HERE = Path(__file__).resolve().parent


def _reconcile(event: Any, context: Any) -> Any:
    report = asdict(reconcile(runtime(handler_dir=HERE, metrics=METRICS)))
    logger.info("reconciled", extra={"report": report})
    return report


def handler(event: Any, context: Any) -> Any:
    return run(_reconcile, event, context, function="reconciler")
