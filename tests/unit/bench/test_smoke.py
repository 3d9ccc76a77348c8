"""Each benchmark at a tiny size: it runs end to end and answers every key that
bench/results.json and docs/benchmarks.md promise. The figures themselves are not
checked here (a tiny run measures noise); ``make bench`` produces the real ones."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bench import (
    cold_start,
    cost,
    engine,
    local_http,
    prices,
    reconciler,
    report,
    scaling,
    template,
)

# Long: whole runs end to end (`make test-fast` deselects them with -m "not slow").
pytestmark = pytest.mark.slow

FUNCTIONS = {
    "dispatcher": template.Function(1024, "arm64"),
    "task_runner": template.Function(256, "arm64"),
}


def _numbers(section: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = section[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, key


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("bench")
    return {
        "meta": {
            "date": "2026-01-01T00:00:00Z",
            "command": "pytest",
            "python": "3",
            "implementation": "CPython",
            "platform": "test",
            "cpu_count": 2,
            "cpu_model": "test",
            "git_commit": "0" * 40,
            "git_dirty": False,
            "load_average_at_end": [0.0, 0.0, 0.0],
            "seconds": 1.0,
        },
        "cost": cost.run(template.from_layout(FUNCTIONS), lifecycles=1),
        "cold_start": cold_start.run(rounds=1, layer=False),
        "local_http": local_http.run(
            work, clients=2, seconds=0.3, max_requests=200, events=5, hops=3
        ),
        "scaling": scaling.run(work, sizes=(10, 200), events=20, batches=2, runs=3),
        "engine": engine.run(work, lifecycles=20, repeats=1),
        "reconciler": reconciler.run(sizes=(10, 200), active=3),
    }


def _unmeasured_usd(cost: dict[str, Any]) -> float:
    """USD per million events, less what measured durations price (Lambda compute)."""
    by_item = cost["usd_per_million_events_by_item"]
    return float(sum(v for k, v in by_item.items() if k != "lambda_compute"))


def test_cost_prices_a_lifecycle_against_step_functions(results: dict[str, Any]) -> None:
    c = results["cost"]
    _numbers(c, "usd_per_million_events", "ratio_vs_step_functions", "events_per_lifecycle")
    _numbers(c, "floor_usd_per_million_events", "ratio_to_floor")
    off = c["notices_off"]
    _numbers(off, "usd_per_million_events", "ratio_vs_step_functions", "ratio_to_floor")
    # Machine State Changed left out: only Machine Deleted is put, and the run costs less.
    # Lambda compute is priced from measured durations, which a loaded machine swings by
    # more than the notices cost: the comparison leaves it out.
    assert off["notices_per_lifecycle"] == 1
    assert _unmeasured_usd(off) < _unmeasured_usd(c)
    # Behind the HTTP API: the same lifecycle as payload 2.0 events makes the same calls,
    # and only its API requests are cheaper.
    http = c["http_api"]
    _numbers(http, "usd_per_million_events", "floor_usd_per_million_events", "ratio_to_floor")
    assert 0 < http["ratio_vs_step_functions"] < c["ratio_vs_step_functions"]
    assert http["floor_usd_per_million_events"] < c["floor_usd_per_million_events"]
    assert http["aws_calls_per_event"] == c["aws_calls_per_event"]
    assert http["events_per_lifecycle"] == c["events_per_lifecycle"]
    rest_api = c["usd_per_million_events_by_item"]["api_gateway"]
    assert http["usd_per_million_events_by_item"]["api_gateway"] == pytest.approx(
        rest_api * prices.USD_PER_MILLION["apigateway_http_request"] / 3.50
    )
    calls = c["aws_calls_per_event"]
    # The least an event costs: a read; a lifecycle also writes, publishes and starts tasks.
    assert calls["dynamodb.GetItem"] > 0 and calls["dynamodb.PutItem"] > 0
    # Every write of the lifecycle's machine items stays within one write unit.
    dynamodb = c["dynamodb"]
    assert dynamodb["write_units_per_event"] == dynamodb["write_requests_per_event"]
    assert calls["events.PutEvents"] > 0 and calls["codebuild.StartBuild"] > 0
    assert c["step_functions_transitions_per_lifecycle"] == 4  # INIT PROVISION RUN TEARDOWN
    assert c["physical_limit"]["requests_per_event"] == 2
    assert c["user_work_calls_not_priced"] == {"lambda.Invoke": 1}


def test_cold_start_compares_with_the_baseline(results: dict[str, Any]) -> None:
    _numbers(results["cold_start"], "dispatcher_import_s", "baseline_import_s", "ratio")
    _numbers(results["cold_start"], "as_deployed_ratio", "without_bytecode_ratio")


def test_local_http_drives_both_servers(results: dict[str, Any]) -> None:
    h = results["local_http"]
    _numbers(h, "events_per_second", "p50_ms", "p99_ms", "ratio_vs_bare_http_server")
    _numbers(h, "one_client_p50_ms", "one_client_p99_ms", "next_hop_p50_ms", "next_hop_p99_ms")
    _numbers(h["bare_http_server"], "events_per_second", "p99_ms")


def test_scaling_times_both_sizes(results: dict[str, Any]) -> None:
    _numbers(results["scaling"], "per_event_ms_at_10", "per_event_ms_at_200", "ratio")
    assert len(results["scaling"]["run_ratios"]) == 3


def test_engine_runs_all_three_libraries(results: dict[str, Any]) -> None:
    _numbers(
        results["engine"],
        "transitions_per_second",
        "python_statemachine_transitions_per_second",
        "pytransitions_transitions_per_second",
        "ratio",
    )


def test_the_reconciler_run_is_priced_at_both_sizes(results: dict[str, Any]) -> None:
    r = results["reconciler"]
    _numbers(r, "read_units_at_10", "read_units_at_200", "read_units_ratio")
    # It read the active machines (run() checks that it read exactly those).
    assert r["active_machines"] == 3 and r["read_requests_at_200"] > 0


def test_the_page_shows_every_goal_with_its_figure(results: dict[str, Any], tmp_path: Path) -> None:
    # the page is written for the sizes make bench uses; rename the tiny run's keys
    s = results["scaling"]
    s = {**s, "sizes": [100, 100_000], "per_event_ms_at_100": s["per_event_ms_at_10"]}
    s["per_event_ms_at_100000"] = s["per_event_ms_at_200"]
    s["database_mb"] = {"100000": 1.0}
    s["fill_seconds"] = {"100000": 1.0}
    results = {**results, "scaling": s}
    results["cold_start"] = {**results["cold_start"], "layer_mb": 16.0, "layer_zip_mb": 5.0}
    results["cold_start"]["layer_files"] = 700
    page = report.render(results)
    for goal in report.GOALS:
        assert f"`{goal.name}`" in page
        if goal.measured(results):
            assert f"| {report._n(goal.value(results))} |" in page
    assert results["meta"]["git_commit"][:12] in page
    missed = [g for g in report.GOALS if g.missed(results)]
    assert page.count("**missed**") == len(missed)
    assert page.count("**Why the goal") == len(missed)
    unmeasured = [g for g in report.GOALS if not g.measured(results)]
    assert page.count("not measured in this run") == len(unmeasured)
