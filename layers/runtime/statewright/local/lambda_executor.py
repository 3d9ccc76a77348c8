"""The local ``lambda`` executor: ``--functions DIR`` maps the function name N to
``DIR/N.py``, whose ``handler(event, context)`` runs in a subprocess
(statewright.local.task_process) with the task's timeout.

The function gets the event of statewright.executors.function_event, as in AWS; its
JSON return value is the task output; an exception fails the task with ``ErrorType:
message`` (what AWS Lambda reports as errorType and errorMessage)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from statewright.executors.builtin import LambdaConfig
from statewright.executors.function_event import function_event
from statewright.local.runs import (
    OUTPUT_LIMIT_BYTES,
    LocalExecutor,
    Run,
    TaskFailed,
    output_too_large,
)
from statewright.ports import Bus


class LocalLambdaExecutor(LocalExecutor):
    name = "lambda"

    def __init__(
        self,
        *,
        bus: Bus,
        functions_dir: Path | None,
        logs_dir: Path | None = None,
        max_concurrent: int = 16,
        python: str = sys.executable,
    ) -> None:
        super().__init__(bus=bus, logs_dir=logs_dir, max_concurrent=max_concurrent)
        self._functions_dir = functions_dir.resolve() if functions_dir is not None else None
        self._python = python

    def function_file(self, config: LambdaConfig) -> Path:
        name = config.function_name
        if self._functions_dir is None:
            raise TaskFailed(
                f"no functions folder to find function {name!r} in: start the control plane "
                f"with --functions DIR, DIR holding {name}.py with a handler(event, context)"
            )
        path = self._functions_dir / f"{name}.py"
        if not path.is_file():
            raise TaskFailed(
                f"function {name!r} not found: expected {path} defining handler(event, context)"
            )
        return path

    def execute(self, run: Run) -> Any:
        invocation = run.invocation
        config = LambdaConfig.model_validate(invocation.task_spec.config)
        path = self.function_file(config)
        event = json.dumps(function_event(invocation, config)).encode()
        env = {
            **os.environ,
            "STATEWRIGHT_PARENT_PID": str(os.getpid()),
            "STATEWRIGHT_RUN_ID": run.run_id,
            "STATEWRIGHT_TIMEOUT_SECONDS": str(invocation.timeout_seconds),
            "PYTHONUNBUFFERED": "1",
        }
        result = self.run_process(
            run,
            [self._python, "-m", "statewright.local.task_process", str(path)],
            cwd=path.parent,
            env=env,
            stdin=event,
            what=f"function {config.function_name}",
        )
        if len(result.stdout) > OUTPUT_LIMIT_BYTES:
            raise output_too_large(f"function {config.function_name}", len(result.stdout))
        try:
            envelope = json.loads(result.stdout)
        except ValueError:
            tail = self.log_tail(run, lines=3)
            raise TaskFailed(
                f"function {config.function_name} exited with code {result.returncode} "
                "without a result" + (f": {tail}" if tail else "")
            ) from None
        if not envelope.get("ok"):
            kind = envelope.get("error_type")
            raise TaskFailed(
                str(envelope.get("error") or "function failed"),
                error_type=kind if isinstance(kind, str) else None,
            )
        return envelope.get("output")
