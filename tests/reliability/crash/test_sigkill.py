"""Repeated SIGKILL of a real `statewright serve` at random moments while Lambda and
Terraform tasks run on several machines, restarting on the same data dir each time.

What must hold (docs/runtime.md#the-loop): transitions happen exactly once (no event lost or
applied twice, even when the client's answer died with the server and it retried with
the same Idempotency-Key); tasks are at-least-once across a crash but never started
twice by one server life, and a task the store already records as succeeded is never
run again after a restart; every machine ends where its events lead; no task process
outlives its server; Terraform state matches the last apply or destroy.

Short mode (`make test`) kills a few times; `make reliability` kills many times."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.local.helpers import wait_gone
from tests.integration.local.server import EXAMPLES, Server, children_of, gone, in_state
from tests.reliability.crash.ledger import (
    FIXTURES,
    Start,
    doubled_in_one_life,
    lambda_starts,
    terraform_starts,
    write_terraform_wrapper,
)
from tests.reliability.figures import long_run, record, scaled

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

MODULE = EXAMPLES / "terraform" / "preview-env"
SPEC = f"""\
# A machine with a lambda task and a Terraform apply side by side, and a Terraform
# destroy on the way out (the demo's shape, with a function that counts its runs).
version: 1.0
events: [LAUNCH, DESTROY]
states:
  INIT:
    on:
      LAUNCH: [{{action: advance, state: PROVISION}}]
      DESTROY: [{{action: advance, state: TEARDOWN}}]
  PROVISION:
    tasks: [note, infrastructure]
    on:
      NEXT: [{{action: advance, state: RUN}}]
      DESTROY: [{{action: advance, state: TEARDOWN}}]
  RUN:
    on:
      DESTROY: [{{action: advance, state: TEARDOWN}}]
  TEARDOWN:
    terminal: true
    tasks: [teardown]
tasks:
  note:
    executor: lambda
    config: {{name: note}}
    timeout_seconds: 60
  infrastructure:
    executor: terraform
    config:
      action: apply
      source: {{type: local, location: {json.dumps(str(MODULE))}}}
      variables: {{replicas: 2}}
    timeout_seconds: 300
  teardown:
    executor: terraform
    config:
      action: destroy
      source: {{type: local, location: {json.dumps(str(MODULE))}}}
    timeout_seconds: 300
"""


@dataclass
class Command:
    """One POST the client must see applied exactly once."""

    machine: str
    event: str
    body: dict[str, Any]
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    answer: int | None = None
    tries: int = 0


@dataclass
class Crashes:
    """The run's own bookkeeping, for the checks and the figures."""

    kills: int = 0
    task_processes_at_kills: int = 0
    retried_after_crash: int = 0
    replayed: int = 0
    finished_before_restart: dict[int, set[tuple[str, int, str, int]]] = field(default_factory=dict)


class CrashServer(Server):
    """`statewright serve` on the crash spec, with the logging terraform wrapper."""

    def __init__(self, root: Path) -> None:
        specs = root / "specs"
        specs.mkdir()
        (specs / "crash.yml").write_text(SPEC, encoding="utf-8")
        super().__init__(root, specs=[specs])
        (self.functions / "note.py").symlink_to(FIXTURES / "note.py")
        self.terraform_log = root / "tf.log"
        self.terraform = write_terraform_wrapper(root, self.terraform_log)

    def argv(self) -> list[str]:
        args = super().argv()
        args[args.index("--terraform-bin") + 1] = str(self.terraform)
        return args


def send(server: Server, command: Command) -> None:
    """POST the command once; leaves ``answer`` None when the server died meanwhile."""
    command.tries += 1
    try:
        answer = server.request(
            "POST",
            f"/machines/{command.machine}/events",
            command.body,
            {"Idempotency-Key": command.key},
        )
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return
    command.answer = answer.status
    if answer.headers.get("Idempotent-Replayed") == "true":
        command.answer = -answer.status  # marks a replay for the figures below
    assert answer.status == 202 or (command.tries > 1 and answer.status in (404, 409)), (
        command,
        answer,
    )


def sender(server: Server, commands: list[Command]) -> threading.Thread:
    def run() -> None:
        for command in commands:
            if command.answer is None:
                send(server, command)
                if command.answer is None:
                    return  # the server is gone: the rest waits for the restart

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for_moment(server: Server, rng: random.Random) -> None:
    """Wait for a random moment to kill at: mostly while task processes run, sometimes
    while requests are being answered, sometimes any time at all."""
    assert server.process is not None
    moment = rng.choices(["tasks", "requests", "any"], weights=[6, 2, 2])[0]
    if moment == "requests":
        time.sleep(rng.uniform(0.0, 0.08))
        return
    if moment == "tasks":
        deadline = time.monotonic() + 10
        while not children_of(server.process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 2.0))
        return
    time.sleep(rng.uniform(0.0, 4.0))


def snapshot_succeeded(server: Server, machines: list[str]) -> set[tuple[str, int, str, int]]:
    """Attempts the store records as succeeded when a new server life begins."""
    done = set()
    for mid in machines:
        machine = server.machine(mid)
        if machine is None:
            continue
        for name, task in machine["tasks"].items():
            if task["status"] == "succeeded":
                done.add((mid, task["epoch"], name, task["attempt"]))
    return done


def test_repeated_sigkill_during_task_runs_loses_and_doubles_nothing(tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    kills = scaled(3, 25)
    per_round = scaled(2, 3)
    runs_file = tmp_path / "runs.txt"
    server = CrashServer(tmp_path)
    crashes = Crashes()
    launched: list[str] = []
    destroyed: set[str] = set()
    commands: list[Command] = []
    pids: list[int] = []

    try:
        for _ in range(kills):
            server.start()
            assert server.process is not None
            pids.append(server.process.pid)
            crashes.finished_before_restart[server.process.pid] = snapshot_succeeded(
                server, launched
            )
            # Commands the previous life never answered go first, with their own keys.
            unanswered = [c for c in commands if c.answer is None]
            crashes.retried_after_crash += len(unanswered)
            round_commands = list(unanswered)
            for _ in range(per_round):
                mid = f"crash-{uuid.uuid4().hex[:8]}"
                launched.append(mid)
                metadata = {"sleep": round(rng.uniform(0.2, 3.0), 2), "runs_file": str(runs_file)}
                metadata["owner"] = mid
                body = {"event": "LAUNCH", "spec": "crash", "metadata": metadata}
                round_commands.append(Command(mid, "LAUNCH", body))
            # Now and then a machine launched in an earlier life is destroyed, wherever
            # it is (INIT, PROVISION with tasks running, RUN).
            older = [m for m in launched[:-per_round] if m not in destroyed]
            if older and rng.random() < 0.6:
                victim = rng.choice(older)
                destroyed.add(victim)
                round_commands.append(Command(victim, "DESTROY", {"event": "DESTROY"}))
            commands.extend(c for c in round_commands if c not in commands)
            thread = sender(server, round_commands)
            wait_for_moment(server, rng)
            orphans = children_of(server.process.pid)
            crashes.task_processes_at_kills += len(orphans)
            server.kill()
            crashes.kills += 1
            thread.join(60)
            for pid in orphans:
                assert wait_gone(pid, timeout=20), f"task process {pid} outlived its server"

        # The last life: retry what is unanswered, then let every machine settle.
        server.start()
        assert server.process is not None
        pids.append(server.process.pid)
        crashes.finished_before_restart[server.process.pid] = snapshot_succeeded(server, launched)
        unanswered = [c for c in commands if c.answer is None]
        crashes.retried_after_crash += len(unanswered)
        sender(server, unanswered).join(120)
        assert all(c.answer is not None for c in commands), "a command never got an answer"
        settled = _check_machines(server, launched, destroyed)
    finally:
        server.kill()

    restarted = _check_runs(runs_file, server.terraform_log, pids, crashes)
    if long_run():
        assert restarted > 0, "no kill ever landed on a running task"
    _check_terraform_state(server, launched, destroyed)
    crashes.replayed = sum(1 for c in commands if c.answer is not None and c.answer < 0)
    record(
        "crash",
        kills=crashes.kills,
        machines=len(launched),
        recovered=settled,
        task_processes_at_kills=crashes.task_processes_at_kills,
        commands_retried_after_crash=crashes.retried_after_crash,
        idempotent_replays=crashes.replayed,
        task_runs_restarted=restarted,
        lost=0,
        doubled=0,
        seed=seed,
    )


def _check_machines(server: Server, launched: list[str], destroyed: set[str]) -> int:
    settled = 0
    for mid in launched:
        if mid in destroyed:
            server.wait_for(mid, gone, 180)
            settled += 1
            continue
        machine = server.wait_for(mid, in_state("RUN"), 180)
        assert machine is not None
        assert machine["epoch"] == 3, machine  # INIT 1, PROVISION 2, RUN 3: none doubled
        assert machine["tasks"]["note"]["status"] == "succeeded"
        infrastructure = machine["tasks"]["infrastructure"]
        assert infrastructure["status"] == "succeeded"
        assert infrastructure["output"]["owner"] == mid
        history = server.request("GET", f"/machines/{mid}/history?limit=1000").body["entries"]
        events = [e["event"] for e in history if e["kind"] == "event"]
        assert events == ["LAUNCH", "NEXT"], (mid, history)
        transitions = [
            (e["from_state"], e["to_state"]) for e in history if e["kind"] == "transition"
        ]
        assert transitions == [("INIT", "PROVISION"), ("PROVISION", "RUN")], (mid, history)
        settled += 1
    return settled


def _check_runs(runs_file: Path, tf_log: Path, pids: list[int], crashes: Crashes) -> int:
    """Checks every start; returns how many attempts a later life started again."""
    starts: list[Start] = lambda_starts(runs_file) + terraform_starts(tf_log)
    assert starts, "no task ever started"
    assert doubled_in_one_life(starts) == [], "one server life started an attempt twice"
    life = {pid: n for n, pid in enumerate(pids)}
    for start in starts:
        assert start.pid in life, f"{start} was started by a process this test never ran"
        # Each life began by reading the store: an attempt recorded as succeeded then
        # is never run by a later life.
        for pid in pids[: life[start.pid]]:
            assert start.attempt_key not in crashes.finished_before_restart[pid], (
                f"{start} re-ran an attempt already recorded as succeeded"
            )
    lives: dict[tuple[str, int, str, int], set[int]] = {}
    for start in starts:
        lives.setdefault(start.attempt_key, set()).add(start.pid)
    return sum(len(pids_of) > 1 for pids_of in lives.values())


def _check_terraform_state(server: Server, launched: list[str], destroyed: set[str]) -> None:
    root = server.data_dir / "terraform"
    # A killed server's runs never reach their cleanup; the next life removes their
    # working directories (which hold the metadata in statewright.auto.tfvars.json).
    assert list(root.glob("*/*/runs/*")) == []
    for mid in launched:
        states = list((root / mid).glob("*/terraform.tfstate"))
        if mid in destroyed:
            # Destroyed before its apply ever ran: no state. Otherwise it is empty.
            for state in states:
                assert json.loads(state.read_text())["outputs"] == {}, mid
            continue
        assert len(states) == 1, (mid, states)
        outputs = json.loads(states[0].read_text())["outputs"]
        assert outputs["owner"]["value"] == mid
        assert outputs["instances"]["value"] == [f"preview-{mid}-0", f"preview-{mid}-1"]
