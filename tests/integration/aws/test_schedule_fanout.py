"""A spec schedule's fire through functions/dispatcher/handler.py under moto
(docs/aws.md#schedules): the fan-out lists the spec's machines through the by_spec index
in pages, puts one Machine Event per machine it applies to on the bus (PutEvents, ten a
call), and continues in asynchronous invocations of itself with a signed token until the
last page; delivered back, each event moves its machine once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from statewright.aws import schedule_fanout, wiring
from statewright.aws.observability import METRICS
from statewright.model import Machine
from statewright.schedules import FAN_OUT_PAGE, TARGET_KEY

from tests.integration.aws.deployment import (
    BUS,
    REGION,
    REPO,
    TABLE,
    Deployment,
    eventbridge,
    lambda_context,
)

SPEC = """\
version: 1.0
events: [LAUNCH, SLEEP, DESTROY]
schedules:
  - name: nightly-sleep
    cron: "0 19 * * MON-FRI"
    timezone: Europe/Berlin
    event: SLEEP
    states: [RUN]
states:
  INIT: {on: {LAUNCH: [{action: advance, state: RUN}]}}
  RUN: {on: {SLEEP: [{action: advance, state: ASLEEP}], DESTROY: [{action: advance, state: END}]}}
  ASLEEP: {on: {DESTROY: [{action: advance, state: END}]}}
  END: {terminal: true}
"""
FIRE = "2026-12-01T18:00:00Z"  # 19:00 in Berlin
DISPATCHER_DIR = REPO / "functions" / "dispatcher"


@pytest.fixture
def scheduled(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    (tmp_path / "nightly.yml").write_text(SPEC)
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(tmp_path))
    # What the dispatcher puts on the bus is recorded below; moto's copying of every
    # event to the deployment's capture queue would only slow thousands of them down.
    events = boto3.client("events", region_name=REGION)
    events.remove_targets(Rule="capture", EventBusName=BUS, Ids=["q"])
    events.delete_rule(Name="capture", EventBusName=BUS)
    wiring._build.cache_clear()
    yield deployment
    wiring._build.cache_clear()


def runtime() -> wiring.Runtime:
    """The dispatcher handler's own Runtime (the same arguments, so the same object)."""
    return wiring.runtime(handler_dir=DISPATCHER_DIR, metrics=METRICS)


def store_machines(count: int, state: str) -> list[str]:
    """Machines of the spec written straight to the table as the store lays them out,
    25 to a BatchWriteItem (creating thousands through the API would only make the test
    slow)."""
    rt = runtime()
    spec = rt.service.get_spec("nightly")
    rt.store.put_spec(spec)
    ids = [f"{state.lower()}-{i:05d}" for i in range(count)]
    items = [
        rt.store.machine_item(
            Machine(id=machine_id, spec="nightly", spec_digest=spec.digest, state=state), "seed"
        )
        for machine_id in ids
    ]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for i in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[i : i + 25]]
        assert not dynamodb.batch_write_item(RequestItems={TABLE: requests})["UnprocessedItems"]
    return ids


class Recorded:
    """What the dispatcher put on the bus and which follow-up invocations it made, both
    passed through to moto."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[dict[str, Any]] = []
        self.calls = 0
        self.invocations: list[dict[str, Any]] = []
        rt = runtime()
        events = rt.service.bus._client  # type: ignore[attr-defined]
        put_events = events.put_events

        def record_put(**kwargs: Any) -> Any:
            self.calls += 1
            assert len(kwargs["Entries"]) <= 10
            self.entries += kwargs["Entries"]
            return put_events(**kwargs)

        monkeypatch.setattr(events, "put_events", record_put)
        lam = rt.lambda_client
        invoke = lam.invoke

        def record_invoke(**kwargs: Any) -> Any:
            self.invocations.append(kwargs)
            return invoke(**kwargs)

        monkeypatch.setattr(lam, "invoke", record_invoke)

    def details(self) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries]


def create_dispatcher_function() -> None:
    """The dispatcher as moto knows it, so its follow-up invocations have a target."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="dispatcher", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="dispatcher",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )


def fire_all(dep: Deployment, recorded: Recorded) -> list[str]:
    """Scheduler's fire, then each follow-up invocation the dispatcher asked for, as
    Lambda would run them; the outcome of each."""
    first = {TARGET_KEY: {"spec": "nightly", "schedule": "nightly-sleep", "fire": FIRE}}
    outcomes = [dep.dispatcher.handler(first, lambda_context("dispatcher"))["outcome"]]
    while len(recorded.invocations) >= len(outcomes):
        call = recorded.invocations[len(outcomes) - 1]
        assert call["InvocationType"] == "Event"
        assert call["FunctionName"].endswith(":function:dispatcher")
        payload = json.loads(call["Payload"])
        assert set(payload[TARGET_KEY]) == {"spec", "schedule", "fire", "after"}
        outcomes.append(dep.dispatcher.handler(payload, lambda_context("dispatcher"))["outcome"])
    return outcomes


def check_fan_out(dep: Deployment, monkeypatch: pytest.MonkeyPatch, running: int) -> None:
    create_dispatcher_function()
    targets = store_machines(running, "RUN")
    store_machines(150, "INIT")  # INIT does not handle SLEEP: never sent the event
    recorded = Recorded(monkeypatch)

    outcomes = fire_all(dep, recorded)

    pages = -(-(running + 150) // FAN_OUT_PAGE)
    invocations = -(-pages // schedule_fanout.MAX_PAGES)
    assert outcomes == ["continued"] * (invocations - 1) + ["applied"]
    details = recorded.details()
    assert sorted(d["machine_id"] for d in details) == targets  # each once
    assert {(d["event"], d["reason"], d["fire"]) for d in details} == {
        ("SLEEP", "schedule:nightly-sleep", "2026-12-01T18:00:00.000Z")
    }
    assert {e["Source"] for e in recorded.entries} == {"statewright"}
    assert recorded.calls == sum(-(-n // 10) for n in _per_page(running))


def _per_page(running: int) -> list[int]:
    """Machines sent the event per page with any (the listing is in id order:
    `init-...` first); each page puts its events ten to a call."""
    ids = sorted([f"init-{i:05d}" for i in range(150)] + [f"run-{i:05d}" for i in range(running)])
    pages = [ids[i : i + FAN_OUT_PAGE] for i in range(0, len(ids), FAN_OUT_PAGE)]
    return [n for n in (sum(m.startswith("run-") for m in page) for page in pages) if n]


def test_a_fire_reaches_thousands_of_machines_through_continuations(
    scheduled: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four pages per invocation instead of 50, so a thousand machines need three.
    monkeypatch.setattr(schedule_fanout, "MAX_PAGES", 4)
    check_fan_out(scheduled, monkeypatch, running=1_000)


@pytest.mark.slow
def test_a_fire_reaches_thousands_of_machines_in_full_size_invocations(
    scheduled: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 54 pages: one invocation of 50 and its follow-up.
    check_fan_out(scheduled, monkeypatch, running=5_200)


def test_delivered_events_move_each_machine_once(
    scheduled: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_dispatcher_function()
    targets = store_machines(12, "RUN")
    recorded = Recorded(monkeypatch)
    assert fire_all(scheduled, recorded) == ["applied"]
    for detail in recorded.details() * 2:  # EventBridge may deliver twice
        scheduled.deliver(eventbridge("statewright", "Machine Event", detail))
    for machine_id in targets:
        status, machine = scheduled.get(machine_id)
        assert (status, machine["state"]) == (200, "ASLEEP")
        status, history = scheduled.api("GET", f"/machines/{machine_id}/history")
        events = [e for e in history["entries"] if e["kind"] == "event"]
        assert [(e["event"], e["source"]) for e in events] == [("SLEEP", "schedule:nightly-sleep")]


def test_a_forged_continuation_is_refused(
    scheduled: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_machines(3, "RUN")
    recorded = Recorded(monkeypatch)
    forged = {
        TARGET_KEY: {
            "spec": "nightly",
            "schedule": "nightly-sleep",
            "fire": FIRE,
            "after": "x" * 60,
        }
    }
    assert scheduled.dispatcher.handler(forged, lambda_context("dispatcher")) == {
        "outcome": "refused"
    }
    not_a_fire = {TARGET_KEY: {"spec": "nightly", "fire": "tomorrow"}}
    assert scheduled.dispatcher.handler(not_a_fire, lambda_context("dispatcher")) == {
        "outcome": "refused"
    }
    assert recorded.entries == []
