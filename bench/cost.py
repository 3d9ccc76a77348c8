"""Cost: whole lifecycles of ``specs/preview-env.yml`` through the dispatcher under moto,
every AWS call counted by kind and priced, against Step Functions Standard.

The lifecycle is the one ``tests/integration/aws/test_dispatcher_lifecycle.py`` drives,
played the way AWS plays it: API Gateway requests (create, LAUNCH), the task runner
run on the payload the dispatcher queued, every event the control plane puts on its bus
that the CDK app's rules route back to the dispatcher delivered to it (Task Finished,
NEXT), a user's rule sending DESTROY, the Terraform build's own work (reporting Task
Finished with its outputs), then CodeBuild's Build State Change, which finds the
machine already deleted.

Priced (``bench.prices``): Lambda requests and GB-seconds of the dispatcher and task
runner at their measured in-process durations and the memory the template gives them;
DynamoDB request units from item sizes (``bench.dynamodb_units``); EventBridge events
put; API Gateway requests at the price of the template's API; S3 requests (the lock
check before a build). The build's own GetItem of its variables and PutItem of its run
record (who it is, before Terraform may lock its state) are DynamoDB units.
Not priced: the user's own work (the function the task runner invokes, the build's
minutes, Terraform's own calls: fetching its module, reading and writing its state and
lock), which a Step Functions workflow would pay for just the same, and CloudWatch logs
and metrics.

The lifecycles run twice more: with notices off, and behind the HTTP API option — the
facts of a template synthesized with ``api.type: http``, the dispatcher configured for it
(``STATEWRIGHT_API_TYPE=http``) and every API request sent as the HTTP API sends it
(payload format 2.0), priced at the HTTP API's price (``cost.http_api``).

An *event* is one delivery to the dispatcher (an API request or a bus event). Step
Functions is charged one transition per state the machine entered (creation included),
the least a Standard workflow with the same states could be charged."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from statewright.aws import table_layout

from bench import cost_floor, prices
from bench.aws_calls import Call, CallLog
from bench.dynamodb_units import Table, UnitCounter, Units
from bench.moto_env import control_plane_environment, environment
from bench.template import Deployment as Facts

# The listing index's key attributes (by_spec).
LIST_INDEX_KEYS = (table_layout.LIST_INDEX_PARTITION_KEY, table_layout.LIST_INDEX_SORT_KEY)

SPEC = "preview-env"
OUTPUTS = {"db_url": "postgres://bench"}  # what the buildspec reports: {name: value}
USER_FUNCTION = (
    "statewright-dev-task-db-setup"  # the lambda task's function in specs/preview-env.yml
)


@dataclass
class _Harness:
    log: CallLog
    dep: Any  # tests.integration.aws.deployment.Deployment
    runner: Any
    builds: Any  # the deployment module's Build class
    task_runner_name: str
    published: list[dict[str, Any]]
    seen_calls: int = 0

    def new_calls(self) -> list[Call]:
        calls = self.log.calls[self.seen_calls :]
        self.seen_calls = len(self.log.calls)
        return calls


@contextmanager
def _deployment(facts: Facts, *, state_changed: bool = True) -> Iterator[_Harness]:
    """Statewright's resources under moto, and its two functions loaded in-process; API
    requests go in the format of the facts' API."""
    import boto3
    from moto import mock_aws
    from statewright.aws import task_runner as task_runner_module
    from statewright.aws import wiring
    from statewright.aws.dispatch import api_format

    from tests.integration.aws import deployment as aws

    env = {
        **control_plane_environment(),
        # cdk.json's notices.state_changed and api.type, as the CDK app passes them
        "STATEWRIGHT_STATE_CHANGED_NOTICES": str(state_changed).lower(),
        "STATEWRIGHT_API_TYPE": facts.api_type,
    }
    log = CallLog()
    with environment(env), mock_aws(config={"lambda": {"use_docker": False}}), log.installed():
        boto3.setup_default_session()  # a session created now carries the hooks
        wiring._build.cache_clear()
        task_runner_module._runner.cache_clear()
        _create_resources(facts, aws)
        dispatcher = aws.load_handler("dispatcher")
        runner = aws.load_handler("task_runner")

        def timed(event: Any, context: Any) -> Any:
            trigger = "bus" if api_format(event) is None else "api"
            return log.invoke("dispatcher", dispatcher.handler, event, context, trigger=trigger)

        dep = aws.Deployment(
            dispatcher=SimpleNamespace(handler=timed),  # type: ignore[arg-type]
            task_runner=runner,
            reconciler=None,  # type: ignore[arg-type]
            queue_url="",
            api_type=facts.api_type,
        )
        try:
            yield _Harness(log, dep, runner, aws.Build, aws.TASK_RUNNER, [])
        finally:
            wiring._build.cache_clear()
            task_runner_module._runner.cache_clear()
            boto3.DEFAULT_SESSION = None


def _create_resources(facts: Facts, aws: Any) -> None:
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=aws.REGION)
    dynamodb.create_table(TableName=aws.TABLE, BillingMode="PAY_PER_REQUEST", **facts.table)
    aws.create_control_plane_resources((USER_FUNCTION,))


# ---- one lifecycle ----------------------------------------------------------------------


def _settle(h: _Harness) -> None:
    """Play AWS until nothing is left to deliver: run the task runner for every Invoke
    the dispatcher queued, deliver every event the bus rules route to the dispatcher."""
    from tests.integration.aws import deployment as aws

    while True:
        work: list[tuple[str, Any]] = []
        for call in h.new_calls():
            if call.kind == "lambda.Invoke" and call.params.get("InvocationType") == "Event":
                work.append(("task_runner", json.loads(call.params["Payload"])))
            elif call.kind == "events.PutEvents":
                for entry in call.params["Entries"]:
                    event = aws.eventbridge(
                        entry["Source"], entry["DetailType"], json.loads(entry["Detail"])
                    )
                    h.published.append(event)
                    if (entry["Source"], entry["DetailType"]) in aws.DISPATCHED:
                        work.append(("deliver", event))
            elif call.kind == "codebuild.StartBuild":
                work.append(("build", call))
        if not work:
            return
        for kind, item in work:
            if kind == "task_runner":
                context = aws.lambda_context(h.task_runner_name)
                h.log.invoke("task_runner", h.runner.handler, item, context)
            elif kind == "deliver":
                h.dep.deliver(item)
            else:
                _run_build(h, item)


def _run_build(h: _Harness, start: Call) -> None:
    """What the Terraform build does besides Terraform: read its variables, write its
    run record, report Task Finished with its outputs (infra/buildspec/terraform.yml);
    then CodeBuild's own Build State Change, which the default bus's rule routes to the
    dispatcher."""
    import boto3

    from tests.integration.aws import deployment as aws

    environment = [dict(v) for v in start.params["environmentVariablesOverride"]]
    build = h.builds(
        invocation=None, build_id=start.response["build"]["id"], environment=environment
    )
    with h.log.acting("terraform_build"):
        build.terraform_variables()  # its variables item: one consistent GetItem
        # record_run: who the build is, in the state's run record item (one PutItem),
        # so the next run can release a lock this build leaves if it is stopped
        # (statewright/aws/terraform_locks.py).
        build.record_run("root@bench", datetime.now(UTC))
        # Outputs this small travel in the report: the build stores no object.
        report = build.report("succeeded", OUTPUTS)
        boto3.client("events", region_name=aws.REGION).put_events(
            Entries=[
                {
                    "Source": report["source"],
                    "DetailType": report["detail-type"],
                    "Detail": json.dumps(report["detail"]),
                    "EventBusName": aws.BUS,
                }
            ]
        )
    _settle(h)  # the report reaches the dispatcher first
    h.dep.deliver(build.state_change("SUCCEEDED"))


def _lifecycle(h: _Harness, machine_id: str) -> None:
    from tests.integration.aws import deployment as aws

    status, machine = h.dep.api(
        "POST", "/machines", {"spec": SPEC, "id": machine_id, "metadata": {"branch": "main"}}
    )
    assert status == 201, machine
    status, machine = h.dep.api("POST", f"/machines/{machine_id}/events", {"event": "LAUNCH"})
    assert status == 202, machine
    _settle(h)
    destroy = aws.eventbridge(
        "my.scheduler", "Machine Event", {"machine_id": machine_id, "event": "DESTROY"}
    )
    assert h.dep.deliver(destroy) == "applied"
    _settle(h)
    deleted = [
        e
        for e in h.published
        if e["detail-type"] == "Machine Deleted" and e["detail"]["machine_id"] == machine_id
    ]
    assert len(deleted) == 1, f"{machine_id} was not deleted at the end of its lifecycle"


# ---- pricing ----------------------------------------------------------------------------


def _lambda_usd(log: CallLog, facts: Facts) -> tuple[float, float]:
    requests = len(log.invocations) * prices.USD_PER_MILLION["lambda_request"] / 1e6
    compute = 0.0
    for inv in log.invocations:
        fn = facts.functions[inv.actor]
        billed_ms = math.ceil(inv.seconds * 1000)
        compute += (
            fn.memory_mb / 1024 * billed_ms / 1000 * prices.USD_PER_GB_SECOND[fn.architecture]
        )
    return requests, compute


def _event_chunks(calls: list[Call]) -> int:
    chunks = 0
    for call in calls:
        if call.kind == "events.PutEvents":
            for entry in call.params["Entries"]:
                size = 14 + sum(
                    len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail")
                )
                chunks += math.ceil(size / prices.EVENT_CHUNK_BYTES)
    return chunks


def _price(log: CallLog, units: Units, facts: Facts) -> dict[str, float]:
    p = prices.USD_PER_MILLION
    kinds = log.kinds()
    requests, compute = _lambda_usd(log, facts)
    api_requests = sum(inv.trigger == "api" for inv in log.invocations)
    return {
        "lambda_requests": requests,
        "lambda_compute": compute,
        "api_gateway": api_requests * p[cost_floor.API_REQUEST_PRICES[facts.api_type]] / 1e6,
        "dynamodb_reads": units.read * p["dynamodb_read_unit"] / 1e6,
        "dynamodb_writes": (units.write + units.index_write) * p["dynamodb_write_unit"] / 1e6,
        "eventbridge": _event_chunks(log.calls) * p["eventbridge_event"] / 1e6,
        "s3": (kinds["s3.PutObject"] * p["s3_put"] + kinds["s3.GetObject"] * p["s3_get"]) / 1e6,
    }


_INTERNAL = {"Machine Event", "Task Finished"}  # from source statewright: NEXT/FAILED, completions
_NOTICES = {"Machine State Changed", "Machine Deleted"}


def _floor(
    log: CallLog,
    units: Units,
    published: list[dict[str, Any]],
    facts: Facts,
    dispatcher_seconds: list[float],
    lifecycles: int,
) -> dict[str, Any]:
    """The run's counts, per lifecycle, that ``bench.cost_floor`` prices."""
    ours = [e["detail-type"] for e in published if e["source"] == "statewright"]
    started = Counter(c.kind for c in log.calls if c.actor == "dispatcher")
    dispatcher_ms = 1000 * dispatcher_seconds[len(dispatcher_seconds) // 2]
    counts = cost_floor.Lifecycle(
        events=sum(inv.actor == "dispatcher" for inv in log.invocations) / lifecycles,
        api_requests=sum(inv.trigger == "api" for inv in log.invocations) / lifecycles,
        internal_events=sum(t in _INTERNAL for t in ours) / lifecycles,
        notices=sum(t in _NOTICES for t in ours) / lifecycles,
        lambda_task_starts=started["lambda.Invoke"] / lifecycles,
        build_starts=started["codebuild.StartBuild"] / lifecycles,
        index_entries=units.index_entries / lifecycles,
        index_moves=units.index_moves / lifecycles,
        index_exits=units.index_exits / lifecycles,
    )
    by_item = cost_floor.usd_by_item(
        counts, facts.functions["dispatcher"], dispatcher_ms, api=facts.api_type
    )
    return {
        "per_lifecycle": counts.as_dict(),
        "dispatcher_ms": dispatcher_ms,
        "usd_per_lifecycle_by_item": by_item,
        "usd_per_million_events_by_item": {k: v * 1e6 / counts.events for k, v in by_item.items()},
    }


NOTICES_OFF_KEYS = (
    "usd_per_million_events",
    "usd_per_million_lifecycles",
    "ratio_vs_step_functions",
    "floor_usd_per_million_events",
    "ratio_to_floor",
    "usd_per_million_events_by_item",
)


# What cost.http_api keeps of its run (besides aws_calls_per_event and the source).
HTTP_API_KEYS = (*NOTICES_OFF_KEYS, "events_per_lifecycle")


def run(facts: Facts, *, lifecycles: int = 20, http_facts: Facts | None = None) -> dict[str, Any]:
    """The lifecycles priced with the defaults, again with ``Machine State Changed``
    turned off (cdk.json ``notices.state_changed: false``), and again behind the HTTP API
    option: ``http_facts`` (a template synthesized with ``api.type: http``), or by
    default ``facts`` with its API changed — the same table and functions."""
    if facts.api_type != "rest":
        raise ValueError(f"the defaults are a REST API; these facts are {facts.source}")
    http_facts = http_facts or dataclasses.replace(facts, api_type="http")
    if http_facts.api_type != "http":
        raise ValueError(f"http_facts must be an HTTP API's, not {http_facts.source}")
    results = _measure(facts, lifecycles=lifecycles, state_changed=True)
    off = _measure(facts, lifecycles=lifecycles, state_changed=False)
    results["notices_off"] = {k: off[k] for k in NOTICES_OFF_KEYS} | {
        "notices_per_lifecycle": off["floor"]["per_lifecycle"]["notices"]
    }
    http = _measure(http_facts, lifecycles=lifecycles, state_changed=True)
    results["http_api"] = {k: http[k] for k in HTTP_API_KEYS} | {
        "aws_calls_per_event": http["aws_calls_per_event"],
        "deployment_source": http["deployment_source"],
        "api_request_usd_per_million": prices.USD_PER_MILLION[
            cost_floor.API_REQUEST_PRICES["http"]
        ],
    }
    return results


def _measure(facts: Facts, *, lifecycles: int, state_changed: bool) -> dict[str, Any]:
    with _deployment(facts, state_changed=state_changed) as h:
        _lifecycle(h, "bench-warmup")  # cold clients, the spec's first write
        h.log.clear()
        h.seen_calls = 0
        h.published.clear()
        for i in range(lifecycles):
            _lifecycle(h, f"bench-{i:05d}-{uuid.uuid4().hex[:6]}")
        log = h.log
        published = list(h.published)
    # The user's own function is the task's work, not the control plane's: not priced.
    user_work = [c for c in log.calls if c.actor == "task_runner" and c.kind == "lambda.Invoke"]
    control = [c for c in log.calls if c not in user_work]
    table = Table.from_definition(facts.table)
    units = UnitCounter(table).count(control)
    # The by_spec index alone (not the reconciler's by_due, whose entries follow work, not
    # states): its entry is put when a machine is created and moved when it enters a state.
    listing = UnitCounter(table.with_index(LIST_INDEX_KEYS)).count(control)
    breakdown = _price(log, units, facts)
    total = sum(breakdown.values())
    events = sum(inv.actor == "dispatcher" for inv in log.invocations)
    # states the machine entered, creation included: its by_spec entry put or moved
    states_entered = listing.index_entries + listing.index_moves
    sfn = states_entered * prices.USD_PER_MILLION["stepfunctions_transition"] / 1e6
    kinds = log.kinds()
    reads = units.reads / events
    writes = units.writes / events
    durations = {
        actor: sorted(inv.seconds for inv in log.invocations if inv.actor == actor)
        for actor in ("dispatcher", "task_runner")
    }
    floor = _floor(log, listing, published, facts, durations["dispatcher"], lifecycles)
    floor_total = sum(floor["usd_per_lifecycle_by_item"].values())
    return {
        "lifecycles": lifecycles,
        "events_per_lifecycle": events / lifecycles,
        "usd_per_million_events": total / events * 1e6,
        "usd_per_million_lifecycles": total / lifecycles * 1e6,
        "step_functions_usd_per_million_lifecycles": sfn / lifecycles * 1e6,
        "step_functions_transitions_per_lifecycle": states_entered / lifecycles,
        "ratio_vs_step_functions": total / sfn,
        "floor_usd_per_million_events": floor_total * lifecycles / events * 1e6,
        "ratio_to_floor": total / (floor_total * lifecycles),
        "floor": floor,
        "usd_per_million_events_by_item": {k: v / events * 1e6 for k, v in breakdown.items()},
        "aws_calls_per_event": {k: kinds[k] / events for k in sorted(kinds)},
        "dynamodb": {
            "read_requests_per_event": reads,
            "write_requests_per_event": writes,
            "read_units_per_event": units.read / events,
            "write_units_per_event": units.write / events,
            "index_write_units_per_event": units.index_write / events,
            "write_units_per_event_by_request": {
                kind: n / events for kind, n in sorted(units.by_kind.items())
            },
            "largest_item_written_bytes": units.largest_write_bytes,
            "index_projections": [p for _, p in Table.from_definition(facts.table).indexes],
        },
        "physical_limit": {
            "requests_per_event": 2,
            "measured_requests_per_event": reads + writes,
            "ratio": (reads + writes) / 2,
        },
        "median_duration_ms": {
            actor: 1000 * values[len(values) // 2] for actor, values in durations.items() if values
        },
        "functions": {
            role: {"memory_mb": f.memory_mb, "architecture": f.architecture}
            for role, f in facts.functions.items()
        },
        "deployment_source": facts.source,
        "user_work_calls_not_priced": dict(Counter(c.kind for c in user_work)),
    }
