"""Running the state machine on one store: hypothesis settings for `make test` (short)
and `make reliability` (long), and the figures each run records."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from statewright.ports import Store

from tests.reliability.figures import record, scaled
from tests.reliability.model.stateful import Figures, LifecycleMachine

StoreOpener = Callable[[], tuple[Store, Callable[[], None]]]


def model_settings(examples: tuple[int, int]) -> settings:
    """``examples``: how many interleavings to explore, short and long."""
    return settings(
        max_examples=scaled(*examples),
        stateful_step_count=scaled(30, 60),
        deadline=None,
        database=None,  # every run explores afresh; a failure prints its steps to replay
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def run_model(
    suite: str, open_store: StoreOpener, *, local: bool, examples: tuple[int, int]
) -> Figures:
    """Drive the service over stores from ``open_store`` against the model; record and
    return what the runs did."""
    figures = Figures()
    machine = type(
        f"Lifecycle_{suite.replace('-', '_')}",
        (LifecycleMachine,),
        {"open_store": staticmethod(open_store), "local": local, "figures": figures},
    )
    run_state_machine_as_test(machine, settings=model_settings(examples))
    record(
        suite,
        interleavings=figures["interleavings"],
        steps=figures["steps"],
        events=figures["events"],
        transitions=figures["transitions"],
        duplicates_delivered=figures["duplicates_delivered"],
        events_lost=figures["events_lost"],
        conflicts=figures["conflicts_total"],
        crashes=figures["crashes"],
        recoveries=figures["recoveries"],
        machines_recovered=figures["machines_recovered"],
        starts_repeated=figures["starts_repeated"],
    )
    return figures
