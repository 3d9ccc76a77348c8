"""The dispatcher Lambda: API Gateway requests and bus events (statewright.aws.dispatch).
The bundled specs live beside this file, in ``specs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statewright.aws.dispatch import handle

HERE = Path(__file__).resolve().parent


def handler(event: Any, context: Any) -> Any:
    return handle(event, context, handler_dir=HERE)
