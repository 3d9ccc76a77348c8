"""Engine: pure transitions per second of Statewright's engine against
python-statemachine and transitions (pytransitions), all three running the same
machine — ``specs/preview-env.yml``'s states and transitions (INIT -LAUNCH-> PROVISION
-NEXT-> RUN -DESTROY-> TEARDOWN) — with construction included: each lifecycle builds a
fresh machine and makes its three transitions.

The peers know no tasks, so the machine runs without them; Statewright's engine still
does all its own work per transition (history entries, the bus events it would
publish, the NEXT a satisfied state fires). A second Statewright figure runs the full
preview-env, tasks included (their starts and results are decisions too, but only the
three state changes are counted as transitions).

pytransitions is built with ``auto_transitions=False``: its default adds a ``to_<state>``
transition per state, which is not the same machine (and is slower to build)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import specs

NOW = "2026-01-01T00:00:00.000Z"
STATES = ["INIT", "PROVISION", "RUN", "TEARDOWN"]
PATH = [
    ("LAUNCH", "INIT", "PROVISION"),
    ("NEXT", "PROVISION", "RUN"),
    ("DESTROY", "RUN", "TEARDOWN"),
]
TRANSITIONS_PER_LIFECYCLE = len(PATH)


def statewright_lifecycles(spec: Any) -> Callable[[int], None]:
    from statewright import engine

    def run(n: int) -> None:
        for i in range(n):
            decision = engine.create(spec, engine.Create(f"m{i}"), NOW)
            machine = decision.machine
            decision = engine.decide(machine, spec, engine.ExternalEvent("LAUNCH"), NOW)
            machine = decision.machine
            decision = engine.decide(
                machine, spec, engine.InternalEvent("NEXT", machine.epoch), NOW
            )
            machine = decision.machine
            decision = engine.decide(machine, spec, engine.ExternalEvent("DESTROY"), NOW)
            if not decision.deleted:
                raise AssertionError(f"the lifecycle did not end: {decision}")

    return run


def statewright_lifecycles_with_tasks(spec: Any) -> Callable[[int], None]:
    """The full preview-env: each task is started and succeeds before NEXT."""
    from statewright import engine
    from statewright.model import TaskFinishedDetail

    def step(machine: Any, inp: Any) -> Any:
        decision = engine.decide(machine, spec, inp, NOW)
        return decision, decision.machine

    def finish(machine: Any, task: str) -> Any:
        started = engine.TasksStarted((engine.StartReport(task, machine.epoch, 1, run_id="r"),))
        _, machine = step(machine, started)
        detail = TaskFinishedDetail(
            machine_id=machine.id, epoch=machine.epoch, task=task, attempt=1, status="succeeded"
        )
        return step(machine, engine.TaskFinished(detail))

    def run(n: int) -> None:
        for i in range(n):
            machine = engine.create(spec, engine.Create(f"m{i}"), NOW).machine
            _, machine = step(machine, engine.ExternalEvent("LAUNCH"))
            _, machine = finish(machine, "db-setup")
            _, machine = step(machine, engine.InternalEvent("NEXT", machine.epoch))
            _, machine = step(machine, engine.ExternalEvent("DESTROY"))
            decision, _ = finish(machine, "db-teardown")
            if not decision.deleted:
                raise AssertionError(f"the lifecycle did not end: {decision}")

    return run


def python_statemachine_lifecycles() -> Callable[[int], None]:
    from statemachine import State, StateMachine

    class PreviewEnv(StateMachine):  # type: ignore[misc]
        INIT = State(initial=True)
        PROVISION = State()
        RUN = State()
        TEARDOWN = State(final=True)
        LAUNCH = INIT.to(PROVISION)
        NEXT = PROVISION.to(RUN)
        DESTROY = RUN.to(TEARDOWN)

    def run(n: int) -> None:
        for _ in range(n):
            machine = PreviewEnv()
            for event, _source, _target in PATH:
                machine.send(event)
            if machine.current_state_value != "TEARDOWN":
                raise AssertionError(machine.current_state_value)

    return run


def pytransitions_lifecycles() -> Callable[[int], None]:
    from transitions import Machine

    transitions = [{"trigger": e, "source": s, "dest": d} for e, s, d in PATH]

    class Model:
        state: str

    def run(n: int) -> None:
        for _ in range(n):
            model = Model()
            Machine(
                model=model,
                states=STATES,
                transitions=transitions,
                initial="INIT",
                auto_transitions=False,
            )
            for event, _source, _target in PATH:
                model.trigger(event)  # type: ignore[attr-defined]
            if model.state != "TEARDOWN":
                raise AssertionError(model.state)

    return run


def _rate(
    runners: dict[str, Callable[[int], None]], lifecycles: int, repeats: int
) -> dict[str, float]:
    """Transitions per second of each runner: median of ``repeats`` rounds, the runners
    taking turns within each round."""
    for run in runners.values():
        run(max(1, lifecycles // 5))  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(lifecycles)
            times[name].append(time.perf_counter() - start)
    return {
        name: lifecycles * TRANSITIONS_PER_LIFECYCLE / statistics.median(values)
        for name, values in times.items()
    }


def run(workdir: Path, *, lifecycles: int = 1000, repeats: int = 7) -> dict[str, Any]:
    bare = specs.load("bench-preview-env-bare", specs.preview_env(), workdir / "engine-specs")
    full = specs.load("preview-env", specs.preview_env(tasks=True), workdir / "engine-specs-full")
    rates = _rate(
        {
            "statewright": statewright_lifecycles(bare),
            "python_statemachine": python_statemachine_lifecycles(),
            "pytransitions": pytransitions_lifecycles(),
            "statewright_with_tasks": statewright_lifecycles_with_tasks(full),
        },
        lifecycles,
        repeats,
    )
    faster_peer = max(rates["python_statemachine"], rates["pytransitions"])
    return {
        "transitions_per_second": rates["statewright"],
        "python_statemachine_transitions_per_second": rates["python_statemachine"],
        "pytransitions_transitions_per_second": rates["pytransitions"],
        "ratio": rates["statewright"] / faster_peer,
        "transitions_per_second_with_tasks": rates["statewright_with_tasks"],
        "lifecycles_per_round": lifecycles,
        "rounds": repeats,
        "transitions_per_lifecycle": TRANSITIONS_PER_LIFECYCLE,
    }
