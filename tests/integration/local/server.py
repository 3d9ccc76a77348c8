"""A real `statewright serve` process for the integration tests, and a tiny HTTP client."""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
STATEWRIGHT = str(BIN / "statewright")
TERRAFORM = str(BIN / "terraform")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = REPO / "examples"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def functions_folder(root: Path) -> Path:
    """The test functions and the example's, side by side (serve takes one folder)."""
    folder = root / "functions"
    folder.mkdir(exist_ok=True)
    for source in [*(FIXTURES / "functions").glob("*.py"), *(EXAMPLES / "functions").glob("*.py")]:
        target = folder / source.name
        if not target.exists():
            target.symlink_to(source)
    return folder


class Server:
    """``statewright serve --port 0`` on a data dir; reads the URL it prints."""

    def __init__(
        self,
        root: Path,
        *,
        specs: Sequence[Path] | None = None,
        args: Sequence[str] = (),
        fd_limit: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``args``: more options for serve; ``fd_limit``: the process's limit of open
        file descriptors (RLIMIT_NOFILE), set before it starts; ``env``: its environment
        (default: this process's)."""
        self.root = root
        self.extra_args = list(args)
        self.fd_limit = fd_limit
        self.env = dict(env) if env is not None else None
        self.data_dir = root / "data"
        self.specs = list(specs or [FIXTURES / "specs", EXAMPLES / "specs"])
        self.functions = functions_folder(root)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log = root / "serve.log"
        self.token: str | None = None  # sent by request() when set

    def argv(self) -> list[str]:
        args = [STATEWRIGHT, "serve", "--port", "0", "--data-dir", str(self.data_dir)]
        for folder in self.specs:
            args += ["--specs", str(folder)]
        return [
            *args,
            "--functions",
            str(self.functions),
            "--terraform-bin",
            TERRAFORM,
            *self.extra_args,
        ]

    def _limit_fds(self) -> None:
        if self.fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, self.fd_limit))

    def start(self, timeout: float = 30.0) -> Server:
        log = self.log.open("a")
        self.process = subprocess.Popen(
            self.argv(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=self.root,
            env=self.env,
            preexec_fn=self._limit_fds if self.fd_limit is not None else None,
        )
        log.close()
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(
                f"serve printed no URL in {timeout}s:\n{self.log.read_text()}"
            ) from None
        if not line.startswith("http://"):
            self.process.wait(10)
            raise AssertionError(f"serve did not start ({line!r}):\n{self.log.read_text()}")
        self.url = line.strip()
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(30)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()

    # ---- HTTP ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=headers or {}
        )
        if self.token is not None:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None and "Content-Type" not in (headers or {}):
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return Answer(resp.status, dict(resp.headers), _json(resp.read()))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), _json(exc.read()))

    def machine(self, machine_id: str) -> dict[str, Any] | None:
        answer = self.request("GET", f"/machines/{machine_id}")
        if answer.status == 404:
            return None
        assert answer.status == 200, answer
        return answer.body

    def wait_for(
        self,
        machine_id: str,
        predicate: Callable[[dict[str, Any] | None], bool],
        timeout: float = 60.0,
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            machine = self.machine(machine_id)
            if predicate(machine):
                return machine
            if time.monotonic() > deadline:
                log = self.log.read_text()[-3000:]
                raise AssertionError(f"{machine_id} never got there; last seen {machine}\n{log}")
            time.sleep(0.1)


def in_state(state: str, status: str = "waiting") -> Callable[[dict[str, Any] | None], bool]:
    return lambda m: m is not None and m["state"] == state and m["status"] == status


def gone(machine: dict[str, Any] | None) -> bool:
    return machine is None


def _json(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found
