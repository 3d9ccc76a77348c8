"""The cost floor's counting: what it charges for a lifecycle, item by item, and the index
entries it learns from the DynamoDB calls of a run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from statewright.aws.table_layout import (
    LIST_INDEX_PARTITION_KEY,
    LIST_INDEX_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
)

from bench import cost_floor, prices, template
from bench.aws_calls import Call
from bench.dynamodb_units import Table, UnitCounter

PREVIEW_ENV = cost_floor.Lifecycle(
    events=7,  # create, LAUNCH, Task Finished, NEXT, DESTROY, Task Finished, Build State Change
    api_requests=2,
    internal_events=3,  # Task Finished twice, NEXT once
    notices=5,  # four states entered, one deletion
    lambda_task_starts=1,
    build_starts=1,
    index_entries=1,
    index_moves=3,
    index_exits=1,
)
DISPATCHER = template.Function(memory_mb=1024, architecture="arm64")


def test_the_floor_charges_each_item_once_per_what_it_counts() -> None:
    usd = cost_floor.usd_by_item(PREVIEW_ENV, DISPATCHER, dispatcher_ms=17.2)
    p = prices.USD_PER_MILLION
    assert usd == pytest.approx(
        {
            # seven events and one Lambda task started
            "lambda_requests": 8 * p["lambda_request"] / 1e6,
            # 17.2 ms is billed as 18 ms, at 1 GB, per event
            "lambda_compute": 7 * 0.018 * prices.USD_PER_GB_SECOND["arm64"],
            "api_gateway": 2 * p["apigateway_rest_request"] / 1e6,
            "dynamodb_reads": 7 * p["dynamodb_read_unit"] / 1e6,
            # a unit per event, and the index: 1 on creation, 2 per state change, 1 on deletion
            "dynamodb_writes": (7 + 1 + 3 * 2 + 1) * p["dynamodb_write_unit"] / 1e6,
            "eventbridge": 8 * p["eventbridge_event"] / 1e6,
            "s3": 0.0,
        }
    )


def test_notices_off_lower_only_the_bus_events() -> None:
    on = cost_floor.usd_by_item(PREVIEW_ENV, DISPATCHER, dispatcher_ms=17.2)
    off = cost_floor.usd_by_item(replace(PREVIEW_ENV, notices=0), DISPATCHER, dispatcher_ms=17.2)
    assert {k for k in on if on[k] != off[k]} == {"eventbridge"}
    assert on["eventbridge"] - off["eventbridge"] == pytest.approx(5e-6)


def test_an_http_api_floor_prices_only_the_api_requests_differently() -> None:
    rest = cost_floor.usd_by_item(PREVIEW_ENV, DISPATCHER, dispatcher_ms=17.2)
    http = cost_floor.usd_by_item(PREVIEW_ENV, DISPATCHER, dispatcher_ms=17.2, api="http")
    assert {k for k in rest if rest[k] != http[k]} == {"api_gateway"}
    assert http["api_gateway"] == pytest.approx(
        2 * prices.USD_PER_MILLION["apigateway_http_request"] / 1e6
    )
    assert http["api_gateway"] < rest["api_gateway"]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _machine(state: str) -> dict[str, Any]:
    return {
        PARTITION_KEY: _s("M#m1"),
        SORT_KEY: _s("M"),
        LIST_INDEX_PARTITION_KEY: _s("preview-env"),
        LIST_INDEX_SORT_KEY: _s(f"{state}#m1"),
        "state": _s(state),
    }


def test_index_entries_moves_and_exits_are_counted_from_the_calls() -> None:
    facts = template.from_layout({"dispatcher": DISPATCHER})
    table = Table.from_definition(facts.table)
    key = {PARTITION_KEY: _s("M#m1"), SORT_KEY: _s("M")}
    calls = [
        Call("dispatcher", "dynamodb", "PutItem", {"Item": _machine("INIT")}, {}),
        Call("dispatcher", "dynamodb", "UpdateItem", {"Key": key}, {"Attributes": _machine("RUN")}),
        # a write that keeps the state keeps the index entry where it is
        Call("dispatcher", "dynamodb", "UpdateItem", {"Key": key}, {"Attributes": _machine("RUN")}),
        Call("dispatcher", "dynamodb", "DeleteItem", {"Key": key}, {}),
    ]
    units = UnitCounter(table).count(calls)
    assert (units.index_entries, units.index_moves, units.index_exits) == (1, 1, 1)
    assert units.index_write == 1 + 2 + 1
