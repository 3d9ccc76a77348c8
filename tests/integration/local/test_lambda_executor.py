"""The local lambda executor, with real subprocesses running real function files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from statewright.local.lambda_executor import LocalLambdaExecutor

from tests.fakes import RecordingBus, invocation
from tests.integration.local.helpers import pid_alive, wait_gone


def write_function(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def functions(tmp_path: Path) -> Path:
    folder = tmp_path / "functions"
    folder.mkdir()
    return folder


@pytest.fixture
def executor(bus: RecordingBus, functions: Path, tmp_path: Path) -> LocalLambdaExecutor:
    ex = LocalLambdaExecutor(bus=bus, functions_dir=functions, logs_dir=tmp_path / "logs")
    yield ex
    ex.shutdown()


def test_function_gets_the_documented_event_and_its_return_value_is_the_output(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path, tmp_path: Path
) -> None:
    write_function(
        functions,
        "echo",
        """
        def handler(event, context):
            print("this goes to the log, not the result")
            return {"event": event, "function": context.function_name,
                    "has_time": context.get_remaining_time_in_millis() > 0}
        """,
    )
    inv = invocation(
        "lambda",
        {"name": "echo", "args": {"size": 3}},
        metadata={"owner": "bob", "n": 1.5, "ok": True, "none": None},
        outputs={"db": {"url": "x"}},
        epoch=4,
        attempt=2,
    )
    run_id = executor.start(inv)
    assert run_id

    detail = bus.finished()
    assert detail["status"] == "succeeded", detail
    assert detail["error"] is None
    assert (detail["machine_id"], detail["epoch"], detail["task"], detail["attempt"]) == (
        "m1",
        4,
        "t",
        2,
    )
    assert detail["output"] == {
        "event": {
            "machine_id": "m1",
            "spec": "jobs",
            "state": "PROVISION",
            "task": "t",
            "epoch": 4,
            "attempt": 2,
            "metadata": {"owner": "bob", "n": 1.5, "ok": True, "none": None},
            "outputs": {"db": {"url": "x"}},
            "args": {"size": 3},
        },
        "function": "echo",
        "has_time": True,
    }
    log = (tmp_path / "logs" / "m1" / "4-t-2.log").read_text()
    assert "this goes to the log" in log


def test_an_exception_fails_the_task_with_its_type_and_message(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path
) -> None:
    write_function(
        functions,
        "boom",
        """
        def handler(event, context):
            raise KeyError("database is gone")
        """,
    )
    executor.start(invocation("lambda", {"name": "boom"}))
    detail = bus.finished()
    assert detail["status"] == "failed"
    assert detail["error"] == "KeyError: 'database is gone'"
    assert detail["error_type"] == "KeyError"


def test_a_value_that_is_not_json_fails_the_task_clearly(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path
) -> None:
    write_function(functions, "setty", "def handler(event, context):\n    return {1, 2}\n")
    executor.start(invocation("lambda", {"name": "setty"}))
    detail = bus.finished()
    assert detail["status"] == "failed"
    assert "not JSON" in detail["error"] and "set" in detail["error"]


def test_a_missing_function_file_names_the_path_expected(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path
) -> None:
    executor.start(invocation("lambda", {"name": "nowhere"}))
    detail = bus.finished()
    assert detail["status"] == "failed"
    assert str(functions / "nowhere.py") in detail["error"]


def test_without_a_functions_folder_the_error_says_how_to_give_one(bus: RecordingBus) -> None:
    executor = LocalLambdaExecutor(bus=bus, functions_dir=None)
    executor.start(invocation("lambda", {"name": "setup"}))
    detail = bus.finished()
    assert detail["status"] == "failed"
    assert "--functions" in detail["error"] and "setup.py" in detail["error"]


def test_a_syntax_error_in_the_file_fails_the_task(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path
) -> None:
    write_function(functions, "broken", "def handler(event, context)\n    return 1\n")
    executor.start(invocation("lambda", {"name": "broken"}))
    detail = bus.finished()
    assert detail["status"] == "failed"
    assert detail["error"].startswith("SyntaxError")


def test_timeout_kills_the_function_and_everything_it_started(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    write_function(
        functions,
        "hang",
        f"""
        import subprocess, sys, time
        def handler(event, context):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            time.sleep(60)
        """,
    )
    started = time.monotonic()
    executor.start(invocation("lambda", {"name": "hang"}, timeout_seconds=2))
    detail = bus.finished()
    assert detail["status"] == "failed"
    assert detail["error"] == "timed out after 2s"
    assert detail["error_type"] == "Timeout"
    assert time.monotonic() - started < 10
    assert wait_gone(int(pid_file.read_text())), "the function's own child survived the timeout"


def test_starting_one_attempt_twice_runs_it_once(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    write_function(
        functions,
        "count",
        f"""
        import time
        def handler(event, context):
            open({str(runs)!r}, "a").write("run\\n")
            time.sleep(0.3)
            return "ok"
        """,
    )
    inv = invocation("lambda", {"name": "count"})
    first = executor.start(inv)
    second = executor.start(inv)
    bus.finished()
    third = executor.start(inv)  # after it finished, too
    time.sleep(0.5)
    assert first == second == third
    assert runs.read_text() == "run\n"
    assert len(bus.events) == 1


def test_another_attempt_is_another_run(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path
) -> None:
    write_function(functions, "ok", "def handler(event, context):\n    return event['attempt']\n")
    a = executor.start(invocation("lambda", {"name": "ok"}, attempt=1))
    b = executor.start(invocation("lambda", {"name": "ok"}, attempt=2))
    assert a != b
    outputs = sorted(e.detail["output"] for e in bus.wait_for(2))
    assert outputs == [1, 2]


def test_cancel_kills_the_run_and_reports_nothing(
    executor: LocalLambdaExecutor, bus: RecordingBus, functions: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    write_function(
        functions,
        "slow",
        f"""
        import os, time
        def handler(event, context):
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
        """,
    )
    run_id = executor.start(invocation("lambda", {"name": "slow"}))
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    executor.cancel(run_id)
    assert wait_gone(pid)
    time.sleep(0.3)
    assert bus.events == []
    assert executor.active_runs() == 0


def test_the_function_process_exits_when_its_control_plane_dies(
    functions: Path, tmp_path: Path
) -> None:
    """SIGKILL of the server must not leave task runs behind the ones recovery starts."""
    write_function(functions, "sleepy", "import time\ndef handler(e, c):\n    time.sleep(60)\n")
    spawner = textwrap.dedent(
        f"""
        import os, subprocess, sys
        function = {str(functions / "sleepy.py")!r}
        child = subprocess.Popen(
            [sys.executable, "-m", "statewright.local.task_process", function],
            stdin=subprocess.PIPE, start_new_session=True,
            env={{**os.environ, "STATEWRIGHT_PARENT_PID": str(os.getpid())}},
        )
        child.stdin.write(b"{{}}"); child.stdin.close()
        print(child.pid, flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", spawner], capture_output=True, text=True, check=True
    )
    pid = int(out.stdout.strip())
    assert wait_gone(pid, timeout=5), "the task process outlived its parent"
    assert not pid_alive(pid)
    assert os.getpid() != pid
