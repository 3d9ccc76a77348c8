"""What a crash or a crowd does to a real `statewright serve`: nothing is lost."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.local.helpers import pid_alive, wait_gone
from tests.integration.local.server import Server, children_of, gone, in_state

pytestmark = pytest.mark.terraform


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_sigkill_while_tasks_run_then_restart_completes_every_machine(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    slow = [new_id("slow") for _ in range(4)]
    server = Server(tmp_path).start()
    try:
        for mid in slow:
            answer = server.request(
                "POST",
                f"/machines/{mid}/events",
                {
                    "event": "LAUNCH",
                    "spec": "jobs",
                    "metadata": {"sleep": 4, "runs_file": str(runs)},
                },
            )
            assert answer.status == 202, answer
        # every function is inside its handler (it wrote its line) when the kill lands
        deadline = time.monotonic() + 30
        while not runs.exists() or len(runs.read_text().splitlines()) < len(slow):
            assert time.monotonic() < deadline, "the slow tasks never started"
            time.sleep(0.05)
        # A demo machine too: its terraform apply may be anywhere when the kill lands.
        demo = new_id("demo")
        assert (
            server.request(
                "POST", f"/machines/{demo}/events", {"event": "LAUNCH", "spec": "demo"}
            ).status
            == 202
        )
        assert server.process is not None
        task_processes = children_of(server.process.pid)
        assert task_processes, "no task process was running at the kill"
        server.kill()
    finally:
        server.kill()

    # the task runs do not outlive the server that started them
    for pid in task_processes:
        assert wait_gone(pid, timeout=10), f"task process {pid} outlived its server"

    with Server(tmp_path) as restarted:
        for mid in slow:
            machine = restarted.wait_for(mid, in_state("RUN"), 60)
            assert machine is not None
            work = machine["tasks"]["work"]
            assert work["status"] == "succeeded" and work["attempt"] == 1
        restarted.wait_for(demo, in_state("RUN"), 60)
        history = restarted.request("GET", f"/machines/{slow[0]}/history").body["entries"]
        assert any(e["kind"] == "task_started" and e["source"] == "recovery" for e in history)
        assert [e["event"] for e in history if e["kind"] == "event"] == ["LAUNCH", "NEXT"]
    lines = runs.read_text().splitlines()
    for mid in slow:
        # killed once, run again once: never more
        assert sum(line.startswith(mid + " ") for line in lines) == 2, lines


def test_forty_concurrent_events_on_one_machine_lose_no_metadata(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        mid = new_id("hot")
        server.request(
            "POST",
            f"/machines/{mid}/events",
            {"event": "LAUNCH", "spec": "jobs", "metadata": {"sleep": 0.3}},
        )

        def touch(i: int) -> int:
            body = {"event": "TOUCH", "metadata": {f"k{i}": i}}
            return server.request("POST", f"/machines/{mid}/events", body).status

        # while the machine's own task finishes and NEXT moves it, from the bus workers
        with ThreadPoolExecutor(max_workers=40) as pool:
            statuses = list(pool.map(touch, range(40)))
        assert statuses == [202] * 40
        machine = server.wait_for(mid, in_state("RUN"), 30)
        assert machine is not None
        for i in range(40):
            assert machine["metadata"][f"k{i}"] == i
        entries = server.request("GET", f"/machines/{mid}/history", None).body["entries"]
        assert sum(e["event"] == "TOUCH" for e in entries if e["kind"] == "event") == 40


def test_twenty_machines_launched_at_once_all_complete(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        ids = [new_id("fleet") for _ in range(20)]

        def launch(mid: str) -> int:
            body = {"event": "LAUNCH", "spec": "demo", "metadata": {"owner": mid}}
            return server.request("POST", f"/machines/{mid}/events", body).status

        def destroy(mid: str) -> int:
            return server.request("POST", f"/machines/{mid}/events", {"event": "DESTROY"}).status

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            assert list(pool.map(launch, ids)) == [202] * 20
        for mid in ids:
            machine = server.wait_for(mid, in_state("RUN"), 120)
            assert machine is not None
            assert machine["tasks"]["infrastructure"]["output"]["owner"] == mid
        listed = server.request("GET", "/machines?spec=demo&state=RUN&limit=1000").body
        assert set(ids) <= {m["id"] for m in listed["machines"]}
        with ThreadPoolExecutor(max_workers=20) as pool:
            assert list(pool.map(destroy, ids)) == [202] * 20
        for mid in ids:
            server.wait_for(mid, gone, 120)
        assert time.monotonic() - started < 240
        assert server.process is not None
        assert all(not pid_alive(p) for p in children_of(server.process.pid))
