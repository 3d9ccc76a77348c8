"""LocalControlPlane as an embedded API: wiring, recovery on start, the data dir lock,
serving HTTP on an ephemeral port."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest
from statewright import LocalControlPlane
from statewright.errors import ConfigurationError
from statewright.model import BusEvent, Machine

from tests.integration.local.helpers import FIXTURES


def plane_at(data_dir: Path) -> LocalControlPlane:
    return LocalControlPlane(
        specs_dirs=[FIXTURES / "specs"],
        data_dir=data_dir,
        functions_dir=FIXTURES / "functions",
    )


def in_run(machine: Machine | None) -> bool:
    return machine is not None and machine.state == "RUN" and machine.status == "waiting"


def test_a_lost_next_is_published_again_on_the_next_start(tmp_path: Path) -> None:
    """The bus queue dies with the process; recovery makes up for the NEXT it held."""
    first = plane_at(tmp_path).start()
    real_publish = first.bus.publish

    def lose_next(events: Sequence[BusEvent]) -> None:
        kept = [e for e in events if e.detail.get("event") != "NEXT"]
        real_publish(kept)

    first.bus.publish = lose_next  # type: ignore[method-assign]
    answer = first.request("POST", "/machines/m1/events", {"event": "LAUNCH", "spec": "jobs"})
    assert answer.status == 202
    stuck = first.wait_until(
        "m1", lambda m: m is not None and m.tasks["work"].status == "succeeded", 30
    )
    assert stuck is not None and stuck.state == "PROVISION" and stuck.status == "running"
    first.stop()

    with plane_at(tmp_path) as second:
        assert second.recovery is not None and second.recovery.events_published == 1
        machine = second.wait_until("m1", in_run, 30)
        assert machine is not None and machine.epoch == 3


def test_a_task_running_at_a_crash_runs_again_on_the_next_start(tmp_path: Path) -> None:
    first = plane_at(tmp_path).start()
    first.request(
        "POST",
        "/machines/m2/events",
        {"event": "LAUNCH", "spec": "jobs", "metadata": {"sleep": 30}},
    )
    first.wait_until("m2", lambda m: m is not None and m.tasks["work"].status == "running", 30)
    first.stop()  # kills the run; the store still says running

    with plane_at(tmp_path) as second:
        assert second.recovery is not None and second.recovery.tasks_started == 1
        assert second.lambda_executor.active_runs() == 1
        history, _ = second.store.history("m2")
        restarts = [e for e in history if e.kind == "task_started" and e.source == "recovery"]
        assert len(restarts) == 1 and restarts[0].attempt == 1


def test_one_data_dir_one_control_plane(tmp_path: Path) -> None:
    with plane_at(tmp_path), pytest.raises(ConfigurationError, match="in use"):
        plane_at(tmp_path).start()
    # released on stop: a new one starts
    with plane_at(tmp_path) as again:
        assert again.request("GET", "/specs").status == 200


def test_serve_on_an_ephemeral_port(tmp_path: Path) -> None:
    with plane_at(tmp_path) as plane:
        url = plane.serve(port=0)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        with urllib.request.urlopen(url + "/specs", timeout=10) as resp:
            assert resp.status == 200
            assert [s["name"] for s in json.load(resp)["specs"]] == ["jobs", "ttl"]


def test_wait_until_says_where_the_machine_is_on_timeout(tmp_path: Path) -> None:
    with plane_at(tmp_path) as plane:
        plane.request("POST", "/machines", {"spec": "jobs", "id": "m3"})
        with pytest.raises(TimeoutError, match=r"m3 still in INIT \(waiting, epoch 1\)"):
            plane.wait_until("m3", in_run, timeout=0.3)


def test_missing_folders_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        LocalControlPlane(specs_dirs=[tmp_path / "nope"], data_dir=tmp_path / "d").start()
    with pytest.raises(ConfigurationError, match="functions folder"):
        LocalControlPlane(
            specs_dirs=[FIXTURES / "specs"],
            data_dir=tmp_path / "d",
            functions_dir=tmp_path / "nope",
        ).start()
