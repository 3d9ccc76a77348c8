"""The subprocesses of local task runs.

``python -m statewright.local.task_process FUNCTION_FILE`` runs one Lambda task: it reads
the invocation event (JSON) on stdin, imports FUNCTION_FILE, calls its
``handler(event, context)`` and writes one JSON envelope on stdout:
``{"ok": true, "output": ...}`` or ``{"ok": false, "error": "ErrorType: message",
"error_type": "ErrorType"}``.
Whatever the function prints goes to stderr (the task's log), so it cannot corrupt the
envelope.

``python -m statewright.local.task_process --exec COMMAND...`` runs COMMAND (a Terraform
step) in its own process group and exits with its exit code.

Either way the process ends when the control plane that started it dies, so a crashed
server leaves no task running beside the ones its recovery starts again. Kept free of
statewright imports: it starts once per task attempt or Terraform step."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, TextIO

PARENT_POLL_SECONDS = 0.2
# What a supervised command gets after SIGINT (Terraform saves its state) before SIGKILL.
ORPHAN_GRACE_SECONDS = 10.0


class LocalContext:
    """The parts of AWS Lambda's context object a function commonly reads."""

    def __init__(self, function_name: str, request_id: str, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = 128
        self.aws_request_id = request_id
        self.log_group_name = f"/statewright/local/{function_name}"
        self.log_stream_name = request_id
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _watch_parent(parent_pid: int) -> None:
    # When the control plane dies (SIGKILL included) we are re-parented; its recovery
    # will start this attempt again, so this run must not linger beside that one.
    while True:
        if os.getppid() != parent_pid:
            os._exit(137)
        time.sleep(PARENT_POLL_SECONDS)


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _run(function_file: str, raw_event: str) -> dict[str, Any]:
    try:
        event = json.loads(raw_event)
    except ValueError as exc:
        return {"ok": False, "error": f"invalid invocation event: {exc}"}
    function_name = os.path.splitext(os.path.basename(function_file))[0]
    # Functions may import helper modules that sit beside them, as in a Lambda bundle.
    sys.path.insert(0, os.path.dirname(os.path.abspath(function_file)))
    try:
        spec = importlib.util.spec_from_file_location(
            f"statewright_task_{function_name}", function_file
        )
        if spec is None or spec.loader is None:
            return {"ok": False, "error": f"cannot load {function_file} as a Python module"}
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handler = getattr(module, "handler", None)
        if not callable(handler):
            return {
                "ok": False,
                "error": f"{function_file} defines no handler(event, context) function",
            }
        context = LocalContext(
            function_name,
            request_id=os.environ.get("STATEWRIGHT_RUN_ID", function_name),
            timeout_seconds=float(os.environ.get("STATEWRIGHT_TIMEOUT_SECONDS", "900")),
        )
        output = handler(event, context)
    except BaseException as exc:  # noqa: BLE001 - see below
        # The function's own failure (any exception, SystemExit included) is the task's
        # result, reported like Lambda's errorType/errorMessage; the trace goes to the log.
        traceback.print_exc(file=sys.stderr)
        return {"ok": False, "error": _describe(exc), "error_type": type(exc).__name__}
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return {
            "ok": False,
            "error": f"handler returned a value that is not JSON ({type(output).__name__}): {exc}",
        }
    return {"ok": True, "output": output}


def _ignore(signum: int, frame: object) -> None:
    return None


def _supervise(command: list[str], parent_pid: int) -> int:
    """Run ``command`` in this process group until it exits; if the control plane dies
    first, interrupt it (then kill it) and everything else in the group."""
    # The executor stops a run by signalling the whole group: SIGINT must reach the
    # command without ending its supervisor first. A handler (not SIG_IGN, which exec
    # would pass on to the command) keeps the supervisor waiting for the command.
    signal.signal(signal.SIGINT, _ignore)
    child = subprocess.Popen(command)
    while True:
        try:
            code = child.wait(timeout=PARENT_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if os.getppid() == parent_pid:
                continue
            os.killpg(0, signal.SIGINT)
            try:
                child.wait(timeout=ORPHAN_GRACE_SECONDS)
            finally:
                os.killpg(0, signal.SIGKILL)
        return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    parent_pid = int(os.environ.get("STATEWRIGHT_PARENT_PID", os.getppid()))
    if len(argv) > 2 and argv[1] == "--exec":
        return _supervise(argv[2:], parent_pid)
    if len(argv) != 2:
        sys.stderr.write(
            "usage: python -m statewright.local.task_process FUNCTION_FILE\n"
            "       python -m statewright.local.task_process --exec COMMAND...\n"
        )
        return 2
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()

    # Keep the real stdout for the envelope; everything the function prints (Python or
    # its child processes) goes to stderr instead.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    result: TextIO = os.fdopen(result_fd, "w", encoding="utf-8")

    envelope = _run(argv[1], sys.stdin.read())
    result.write(json.dumps(envelope, allow_nan=False))
    result.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
