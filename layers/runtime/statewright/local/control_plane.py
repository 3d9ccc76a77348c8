"""LocalControlPlane: the whole local control plane as a Python object (the way Pulumi's
Automation API embeds its engine) — SQLite store, in-process bus, subprocess executors,
the service, and optionally the HTTP server. ``statewright serve`` is a thin shell
around it, and tests drive it directly.

    with LocalControlPlane(specs_dirs=["examples/specs"], data_dir=tmp,
                           functions_dir="examples/functions") as cp:
        url = cp.serve(port=0)
        cp.request("POST", "/machines", {"spec": "demo", "id": "m1"})
        cp.wait_until("m1", lambda m: m is not None and m.status == "waiting")

On start it recovers what a previous process left behind: tasks that were pending or
running start again and satisfied states publish their NEXT (Service.recover); then the
timer thread fires the timers that fell due while it was down (docs/local.md, "Timers")."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from statewright.access import AccessPolicy
from statewright.api import build_api
from statewright.api_idempotency import IN_PROGRESS
from statewright.catalog import SpecCatalog
from statewright.errors import ConfigurationError
from statewright.executors.registry import LocalContext, local_executors, require_implementations
from statewright.local.bus import LocalBus
from statewright.local.runs import LocalExecutor
from statewright.local.server import IDLE_TIMEOUT_SECONDS, MAX_CONNECTIONS, ApiServer, proxy_event
from statewright.local.sqlite_store import SqliteStore
from statewright.local.sqlite_timers import SqliteTimers
from statewright.local.timer_thread import TimerThread
from statewright.local.trust import Token, TrustPolicy, check_bind
from statewright.model import BusEvent, Machine
from statewright.ports import Executor
from statewright.service import RecoveryReport, Service

logger = logging.getLogger(__name__)

DATABASE_FILE = "statewright.db"
LOCK_FILE = "serve.lock"


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any

    def json(self) -> Any:
        return self.body


class LocalControlPlane:
    def __init__(  # noqa: PLR0913 — keyword-only options, one per `statewright serve` flag
        self,
        *,
        specs_dirs: Sequence[Path | str] = ("specs",),
        data_dir: Path | str = ".statewright",
        functions_dir: Path | str | None = None,
        terraform_bin: str | None = None,
        bus_workers: int = 4,
        access: AccessPolicy | None = None,
    ) -> None:
        self.specs_dirs = [Path(d) for d in specs_dirs]
        self.data_dir = Path(data_dir)
        self.functions_dir = Path(functions_dir) if functions_dir is not None else None
        self.terraform_bin = terraform_bin
        self.bus_workers = bus_workers
        self.access = access
        self.recovery: RecoveryReport | None = None
        self._changed = threading.Condition()
        self._server: ApiServer | None = None
        self._server_thread: threading.Thread | None = None
        self._lock_file: IO[str] | None = None
        self._started = False
        self.executors: dict[str, Executor] = {}

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Build everything, start the bus and recover. ConfigurationError when the
        specs do not load, a folder is missing or another process uses the data dir."""
        if self._started:
            return self
        if self.functions_dir is not None and not self.functions_dir.is_dir():
            raise ConfigurationError(f"functions folder {self.functions_dir} does not exist")
        catalog = SpecCatalog.from_folders(self.specs_dirs)
        # A spec whose executor cannot run here is refused now, not when a task starts.
        require_implementations(catalog.specs(), "local")
        if self.access is not None:
            problems = self.access.problems({s.name: s.events for s in catalog.specs()})
            if problems:
                raise ConfigurationError(
                    "the access rules do not fit the specs: " + "; ".join(problems)
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        self.store = SqliteStore(self.data_dir / DATABASE_FILE)
        # The data dir is ours alone (locked above): an unanswered claim is a dead process's.
        self.store.drop_idempotency_records(IN_PROGRESS)
        self.timers = SqliteTimers(self.data_dir / DATABASE_FILE)
        self.bus = LocalBus(workers=self.bus_workers)
        self.executors = local_executors(
            LocalContext(
                bus=self.bus,
                data_dir=self.data_dir.resolve(),
                logs_dir=self.data_dir / "logs",
                functions_dir=self.functions_dir,
                terraform_bin=self.terraform_bin,
            )
        )
        self.service = Service(
            store=self.store,
            bus=self.bus,
            executors=self.executors,
            catalog=catalog,
            access=self.access,
            timers=self.timers,
        )
        self.timer_thread = TimerThread(self.timers, self.service.fire_timer)
        self.api = build_api(self.service)
        self.bus.bind(self.service.handle_bus_event)
        self.bus.subscribe(self._on_event)
        self.bus.start()
        self._started = True
        # The previous process's task runs died with it: restart what was running.
        self.recovery = self.service.recover(restart_running=True)
        self.service.arm_schedules()
        self.timer_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, kill task runs (recovery restarts them next time), drain the
        bus and close the store."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if not self._started:
            return
        self._started = False
        self.timer_thread.stop()
        for executor in self.executors.values():
            if isinstance(executor, LocalExecutor):
                executor.shutdown()
        self.bus.stop()
        self.timers.close()
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- HTTP ---------------------------------------------------------------------------

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: Sequence[Token] = (),
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> str:
        """Serve the HTTP API on a background thread; returns its URL (port 0 picks a free
        port). With ``tokens`` every API request needs one of them (and ``host`` may be
        other than loopback); ConfigurationError for a non-loopback host without."""
        check_bind(host, tokens)
        self.start()
        if self._server is None:
            self._server = ApiServer(
                (host, port),
                self.resolve,
                policy=TrustPolicy(tokens),
                idle_timeout=idle_timeout,
                max_connections=max_connections,
            )
            self._server_thread = threading.Thread(
                target=self._server.serve_forever, name="statewright-http", daemon=True
            )
            self._server_thread.start()
        return self._server.url

    @property
    def url(self) -> str | None:
        return self._server.url if self._server is not None else None

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        """One API Gateway proxy event through the API; requests on several threads are
        resolved in parallel (the store's conditional writes keep each machine's single
        writer)."""
        # The local server has no Lambda context; the API never reads it.
        return self.api.resolve(event, None)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """Call the API in-process, exactly as the HTTP server would (``body`` is sent as
        JSON unless it is bytes)."""
        data = (
            body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        )
        event = proxy_event(method, path, list((headers or {}).items()), data)
        result = self.resolve(event)
        out_headers = {k: str(v[-1]) for k, v in (result.get("multiValueHeaders") or {}).items()}
        out_headers.update({k: str(v) for k, v in (result.get("headers") or {}).items()})
        text = result.get("body") or ""
        return ApiResponse(
            status=int(result["statusCode"]),
            headers=out_headers,
            body=json.loads(text) if text else None,
        )

    # ---- observing ----------------------------------------------------------------------

    def wait_until(
        self,
        machine_id: str,
        predicate: Callable[[Machine | None], bool],
        timeout: float = 60.0,
    ) -> Machine | None:
        """Wait until ``predicate(machine)`` holds (the machine is None once deleted);
        returns that machine. TimeoutError, saying where the machine was, otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            machine = self.store.get(machine_id)
            if predicate(machine):
                return machine
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                where = (
                    "deleted"
                    if machine is None
                    else f"in {machine.state} ({machine.status}, epoch {machine.epoch})"
                )
                raise TimeoutError(f"machine {machine_id} still {where} after {timeout}s")
            with self._changed:
                self._changed.wait(min(remaining, 0.25))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no event is queued and no task runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.bus.wait_idle(max(0.0, deadline - time.monotonic()))
                and self.active_runs() == 0
                and self.bus.wait_idle(0)
            ):
                return True
            time.sleep(0.05)
        return False

    @property
    def lambda_executor(self) -> LocalExecutor:
        return self._local("lambda")

    @property
    def terraform_executor(self) -> LocalExecutor:
        return self._local("terraform")

    def _local(self, name: str) -> LocalExecutor:
        executor = self.executors[name]
        assert isinstance(executor, LocalExecutor)
        return executor

    def active_runs(self) -> int:
        """Task runs in flight, over every executor that keeps runs in this process."""
        return sum(e.active_runs() for e in self.executors.values() if isinstance(e, LocalExecutor))

    def _on_event(self, event: BusEvent) -> None:
        with self._changed:
            self._changed.notify_all()

    # ---- internals ----------------------------------------------------------------------

    def _lock_data_dir(self) -> None:
        """One control plane per data dir: two would run every task twice. The lock dies
        with the process, so a crash never leaves the data dir locked."""
        handle = (self.data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise ConfigurationError(
                f"data dir {self.data_dir} is in use by {owner}; stop it or pass another --data-dir"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"statewright serve (pid {os.getpid()})\n")
        handle.flush()
        self._lock_file = handle
