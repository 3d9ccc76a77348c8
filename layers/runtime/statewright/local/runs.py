"""What the local executors share: the run table (one run per attempt, whatever the
number of starts), cancellation, retry backoff, a bound on concurrent runs, and child
processes that run in their own process group so a timeout or a cancel kills the whole
tree. Each run reports its result to the bus as a ``Task Finished`` event; a run that
keeps state (Terraform) also reports the end of a run it was asked to stop, since the
next run on its state waits for that end (docs/runtime.md, "One run per state file")."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from statewright.limits import TASK_OUTPUT_MAX_BYTES
from statewright.model import (
    OUTPUT_TOO_LARGE,
    TIMEOUT,
    BusEvent,
    TaskFinishedDetail,
    TaskInvocation,
)
from statewright.ports import Bus

logger = logging.getLogger(__name__)

# What a run may print as its result. The engine holds a task output to its limit
# (statewright.limits, 32 KiB as compact JSON); printed JSON is larger (escapes,
# indentation, Terraform's type and sensitivity beside each value), so this only keeps
# a run from filling memory with what could never be an output.
OUTPUT_LIMIT_BYTES = 1024 * 1024
# Runs remembered after they finish, so a repeated start of a finished attempt starts
# nothing (bounded: memory does not grow with uptime).
FINISHED_RUNS_REMEMBERED = 10_000


class RunAborted(Exception):
    """The run was cancelled; nothing is reported (its epoch is already over)."""


def output_too_large(what: str, size: int) -> TaskFailed:
    return TaskFailed(
        f"{what} printed {size} bytes of JSON; a task output is limited to "
        f"{TASK_OUTPUT_MAX_BYTES} bytes (32 KiB) as compact JSON: return less",
        error_type=OUTPUT_TOO_LARGE,
    )


class TaskFailed(Exception):
    """The attempt failed; the message is what the task record's ``error`` shows, and
    ``error_type`` its ``error_type`` (the function's exception class, say)."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class TaskOutput:
    """What :meth:`LocalExecutor.execute` returns when part of the output is withheld:
    the output, and the names of the outputs left out of it (sensitive Terraform
    outputs). Any other return value is the output as it is."""

    value: Any
    redacted_outputs: list[str]


@dataclass
class ProcessResult:
    returncode: int
    stdout: bytes


@dataclass
class Run:
    run_id: str
    invocation: TaskInvocation
    log_path: Path | None
    cancelled: threading.Event = field(default_factory=threading.Event)
    deadline: float = 0.0  # time.monotonic() when the attempt's timeout expires
    process: subprocess.Popen[bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Asked to stop by ``cancel`` (not by a shutdown of the control plane).
    stopped: bool = False


def kill_group(process: subprocess.Popen[bytes], grace_seconds: float = 0.0) -> None:
    """Stop the process and everything it started (its own session/process group):
    SIGINT first when ``grace_seconds`` (Terraform then saves its state), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        if grace_seconds > 0:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(grace_seconds)
                return
            except subprocess.TimeoutExpired:
                pass
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


class LocalExecutor(ABC):
    """Base of the local executors (the Executor port): ``start`` returns at once and a
    thread runs the attempt; subclasses implement :meth:`execute`."""

    name: str
    kill_grace_seconds: float = 0.0
    # Whether the end of a run stopped by ``cancel`` is reported (as a failure of its
    # attempt): executors whose runs hold a state say yes, so the run waiting for that
    # state starts when the stopped one is really over.
    reports_stopped_runs: bool = False

    def __init__(self, *, bus: Bus, logs_dir: Path | None = None, max_concurrent: int = 8) -> None:
        self._bus = bus
        self._logs_dir = logs_dir
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._active: dict[str, Run] = {}  # start_key -> run
        self._by_id: dict[str, Run] = {}  # run_id -> run
        self._finished: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._closed = False

    # ---- the Executor port --------------------------------------------------------------

    def start(self, invocation: TaskInvocation) -> str:
        key = invocation.start_key
        with self._lock:
            if key in self._active:
                return self._active[key].run_id
            if key in self._finished:
                return self._finished[key]
            run = Run(
                run_id=f"local-{self.name}:{key}",
                invocation=invocation,
                log_path=self._log_path(invocation),
            )
            if self._closed:
                # Shutting down: the attempt stays pending/running in the store and the
                # next start's recovery runs it.
                return run.run_id
            self._active[key] = run
            self._by_id[run.run_id] = run
        threading.Thread(target=self._thread, args=(run,), name=run.run_id, daemon=True).start()
        return run.run_id

    def cancel(self, run_id: str) -> None:
        """Stop the run: SIGINT to its process group, SIGKILL after
        ``kill_grace_seconds``. Returns at once; the run's thread sees it end."""
        with self._lock:
            run = self._by_id.get(run_id)
        if run is not None:
            run.stopped = True
            self._abort(run, wait=False)

    # ---- lifecycle ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Kill every run (the store still says running: recovery restarts them)."""
        with self._lock:
            self._closed = True
            runs = list(self._active.values())
        for run in runs:
            self._abort(run)

    def active_runs(self) -> int:
        with self._lock:
            return len(self._active)

    # ---- for subclasses -----------------------------------------------------------------

    @abstractmethod
    def execute(self, run: Run) -> Any:
        """Run the attempt and return its output (or a TaskOutput); raise TaskFailed (or
        RunAborted)."""

    def run_process(  # noqa: PLR0913 — the process's command, environment and limits, by name
        self,
        run: Run,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdin: bytes | None = None,
        capture_stdout: bool = True,
        what: str,
    ) -> ProcessResult:
        """Run one child process within the attempt's deadline. Its stderr (and stdout
        when not captured) goes to the run's log."""
        remaining = run.deadline - time.monotonic()
        if remaining <= 0:
            raise TaskFailed(self.timeout_message(run), error_type=TIMEOUT)
        log = self._open_log(run)
        try:
            with run.lock:
                if run.cancelled.is_set():
                    raise RunAborted(run.run_id)
                # A session of its own: a timeout or cancel kills the whole tree, and a
                # Ctrl-C at the server's terminal does not reach the task.
                try:
                    process = subprocess.Popen(
                        list(argv),
                        cwd=cwd,
                        env=dict(env),
                        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                        stdout=subprocess.PIPE if capture_stdout else log,
                        stderr=log,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise TaskFailed(f"cannot run {argv[0]} ({what}): {exc.strerror}") from exc
                run.process = process
            try:
                stdout, _ = process.communicate(stdin, timeout=remaining)
            except subprocess.TimeoutExpired as exc:
                kill_group(process, self.kill_grace_seconds)
                process.communicate()
                raise TaskFailed(self.timeout_message(run), error_type=TIMEOUT) from exc
            finally:
                with run.lock:
                    run.process = None
        finally:
            if not isinstance(log, int):
                log.close()
        if run.cancelled.is_set():
            raise RunAborted(run.run_id)
        logger.debug("%s %s exited %s", run.run_id, what, process.returncode)
        return ProcessResult(process.returncode, stdout or b"")

    def timeout_message(self, run: Run) -> str:
        return f"timed out after {run.invocation.timeout_seconds}s"

    def log_tail(self, run: Run, lines: int = 12, marker: str | None = None) -> str:
        """The end of the run's log (from the last line starting with ``marker`` when
        given), for an error message a person can act on without opening the file."""
        if run.log_path is None or not run.log_path.exists():
            return ""
        text = run.log_path.read_text(encoding="utf-8", errors="replace").strip()
        all_lines = text.splitlines()
        if marker is not None:
            starts = [i for i, line in enumerate(all_lines) if line.startswith(marker)]
            if starts:
                all_lines = all_lines[starts[0] :]
        tail = [line for line in all_lines if line.strip()][-lines:]
        return "\n".join(tail)

    # ---- internals ----------------------------------------------------------------------

    def _log_path(self, invocation: TaskInvocation) -> Path | None:
        if self._logs_dir is None:
            return None
        return (
            self._logs_dir
            / invocation.machine_id
            / f"{invocation.epoch}-{invocation.task}-{invocation.attempt}.log"
        )

    def _open_log(self, run: Run) -> IO[bytes] | int:
        if run.log_path is None:
            return subprocess.DEVNULL
        run.log_path.parent.mkdir(parents=True, exist_ok=True)
        return run.log_path.open("ab")

    def _abort(self, run: Run, *, wait: bool = True) -> None:
        with run.lock:
            run.cancelled.set()
            process = run.process
        if process is None:
            return
        if wait:
            kill_group(process, self.kill_grace_seconds)
        else:
            # The grace period may take seconds: not in the caller's (a request's) time.
            threading.Thread(
                target=kill_group,
                args=(process, self.kill_grace_seconds),
                name=f"stop {run.run_id}",
                daemon=True,
            ).start()

    def _thread(self, run: Run) -> None:
        invocation = run.invocation
        try:
            detail = self._run(run)
            if run.cancelled.is_set():
                detail = self._stopped(run, detail)
            if detail is not None:
                self._bus.publish(
                    [BusEvent(detail_type="Task Finished", detail=detail.model_dump(mode="json"))]
                )
        finally:
            with self._lock:
                self._active.pop(invocation.start_key, None)
                self._by_id.pop(run.run_id, None)
                self._finished[invocation.start_key] = run.run_id
                while len(self._finished) > FINISHED_RUNS_REMEMBERED:
                    self._finished.popitem(last=False)

    def _run(self, run: Run) -> TaskFinishedDetail | None:
        invocation = run.invocation
        with self._slots:
            if run.cancelled.is_set():
                return None
            run.deadline = time.monotonic() + invocation.timeout_seconds
            return self._attempt(run)

    def _stopped(self, run: Run, result: TaskFinishedDetail | None) -> TaskFinishedDetail | None:
        """What a run that was stopped reports: its end (its result, if it got that
        far), when this executor's runs hold a state and ``cancel`` stopped it; else
        nothing (after a shutdown, recovery restarts the attempt)."""
        if not (run.stopped and self.reports_stopped_runs):
            return None
        if result is not None:
            return result
        return run.invocation.finished(
            "failed", error="the run was stopped (cancel: force, or its timeout)"
        )

    def _attempt(self, run: Run) -> TaskFinishedDetail | None:
        finished = run.invocation.finished
        if run.log_path is not None:
            # A re-run of this attempt (after a crash) starts a fresh log.
            run.log_path.unlink(missing_ok=True)
        try:
            output = self.execute(run)
        except RunAborted:
            return None
        except TaskFailed as exc:
            logger.info("%s failed: %s", run.run_id, exc)
            return finished("failed", error=str(exc), error_type=exc.error_type)
        except Exception as exc:
            # A run thread is a process boundary: an executor bug must still end the
            # attempt with a result, or the machine would wait for it forever.
            logger.exception("%s crashed", run.run_id)
            return finished("failed", error=f"statewright executor error: {exc!r}")
        if isinstance(output, TaskOutput):
            return finished(
                "succeeded", output=output.value, redacted_outputs=output.redacted_outputs
            )
        return finished("succeeded", output=output)
