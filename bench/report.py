"""docs/benchmarks.md, rendered from bench/results.json: fixed prose around the figures
of one run. Every number on the page comes from the results; what the page says about a
missed goal depends on the figures, never the other way round."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import prices, reconciler


@dataclass(frozen=True)
class Goal:
    section: str
    key: str  # dotted within the section: "http_api.ratio_vs_step_functions"
    label: str
    op: str  # "<=" or ">="
    threshold: float

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def target(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.threshold:g}"

    def measured(self, results: dict[str, Any]) -> bool:
        return self._lookup(results) is not None

    def value(self, results: dict[str, Any]) -> float:
        found = self._lookup(results)
        if found is None:
            raise KeyError(f"{self.name} is not in the results")
        return found

    def met(self, results: dict[str, Any]) -> bool:
        """Measured and on the right side of the threshold."""
        if not self.measured(results):
            return False
        compare: Callable[[float, float], bool] = operator.le if self.op == "<=" else operator.ge
        return compare(self.value(results), self.threshold)

    def missed(self, results: dict[str, Any]) -> bool:
        return self.measured(results) and not self.met(results)

    def _lookup(self, results: dict[str, Any]) -> float | None:
        found: Any = results.get(self.section)
        for part in self.key.split("."):
            if not isinstance(found, dict) or part not in found:
                return None
            found = found[part]
        return float(found)


GOALS = (
    Goal("cost", "ratio_vs_step_functions", "cost against Step Functions", "<=", 0.30),
    Goal("cost", "ratio_to_floor", "cost against this architecture's floor", "<=", 1.15),
    Goal(
        "cost",
        "http_api.ratio_vs_step_functions",
        "cost with an HTTP API against Step Functions",
        "<=",
        0.25,
    ),
    Goal("cold_start", "ratio", "cold start against the baseline", "<=", 1.5),
    Goal("cold_start", "as_deployed_ratio", "cold start as Lambda loads the layer", "<=", 1.5),
    Goal("local_http", "ratio_vs_bare_http_server", "local HTTP against a bare server", ">=", 0.4),
    Goal("scaling", "ratio", "per-event time, 100,000 against 100 machines", "<=", 1.2),
    Goal("engine", "ratio", "engine against the faster peer", ">=", 1.0),
    Goal(
        "reconciler",
        "read_units_ratio",
        "reconciler read units, 100,000 against 100 idle machines",
        "<=",
        reconciler.GOAL,
    ),
)


def goal(name: str) -> Goal:
    return next(g for g in GOALS if g.name == name)


def goal_lines(results: dict[str, Any]) -> list[str]:
    return [
        f"{g.name} = {g.value(results):.3g} (goal {g.op} {g.threshold}): "
        + ("met" if g.met(results) else "MISSED")
        if g.measured(results)
        else f"{g.name}: not measured in this run (goal {g.op} {g.threshold})"
        for g in GOALS
    ]


def _n(value: float, digits: int = 3) -> str:
    """A figure with ``digits`` significant digits, thousands separated."""
    if value == 0:
        return "0"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.1 else f"${value:.3g}"


def render(results: dict[str, Any]) -> str:
    parts = [
        _header(results),
        _goals(results),
        _cost(results),
        _cold_start(results),
        _local_http(results),
        _scaling(results),
        _engine(results),
        reconciler.render(results),
        _reproducing(),
    ]
    return "\n".join(part for part in parts if part).rstrip() + "\n"


def _header(r: dict[str, Any]) -> str:
    m = r["meta"]
    load = m.get("load_average_at_end")
    dirty = " (with uncommitted changes)" if m.get("git_dirty") else ""
    return f"""# Benchmarks

Statewright against AWS Step Functions, a bare HTTP server and two Python state-machine
libraries, measured in one run. This page is generated: `bench/report.py` renders it
from `bench/results.json`, which `make bench` writes; do not edit it by hand.

| | |
|---|---|
| command | `{m["command"]}` ({m["seconds"]} s) |
| date | {m["date"]} |
| machine | {m["cpu_count"]} x {m["cpu_model"]}, {m["platform"]} |
| Python | {m["implementation"]} {m["python"]} |
| commit | `{m["git_commit"][:12]}`{dirty} |
| load average at the end | {", ".join(f"{x:.2f}" for x in load) if load else "unknown"} |

Timings are medians of several repetitions after a warm-up, and every comparison
alternates its two sides within the run, so a busy moment hits both. On a machine shared
with other work (see the load average) they still move by tens of percent from run to
run; ratios move less than absolute figures.
"""


def _goals(r: dict[str, Any]) -> str:
    rows = []
    for g in GOALS:
        if g.measured(r):
            verdict = "met" if g.met(r) else "**missed**"
            rows.append(f"| {g.label} | `{g.name}` | {g.target} | {_n(g.value(r))} | {verdict} |")
        else:
            rows.append(f"| {g.label} | `{g.name}` | {g.target} | — | not measured in this run |")
    return "\n".join(
        ["## Goals", "", "| goal | key | target | measured | |", "|---|---|---|---|---|", *rows, ""]
    )


# ---- cost -------------------------------------------------------------------------------

_ITEMS = {
    "lambda_requests": "Lambda requests (dispatcher, task runner)",
    "lambda_compute": "Lambda GB-seconds at the measured durations",
    "api_gateway": "API Gateway requests (REST API; the HTTP API's below)",
    "dynamodb_reads": "DynamoDB read units",
    "dynamodb_writes": "DynamoDB write units (table and index)",
    "eventbridge": "EventBridge events put",
    "s3": "S3 requests (the lock check before a build; objects only for what is too big "
    "for an item or a report)",
}


def _cost(r: dict[str, Any]) -> str:
    c = r.get("cost")
    if c is None:
        return ""
    by_item = c["usd_per_million_events_by_item"]
    total = c["usd_per_million_events"]
    d = c["dynamodb"]
    limit = c["physical_limit"]
    sfn_lifecycle = c["step_functions_usd_per_million_lifecycles"]
    sfn_per_event = sfn_lifecycle / c["events_per_lifecycle"]
    sfn_price = prices.USD_PER_MILLION["stepfunctions_transition"]
    item_rows = [
        f"| {_ITEMS.get(k, k)} | {_usd(v)} | {100 * v / total:.0f}% |"
        for k, v in sorted(by_item.items(), key=lambda kv: -kv[1])
    ]
    call_rows = [f"| `{k}` | {v:.2f} |" for k, v in c["aws_calls_per_event"].items()]
    functions = ", ".join(
        f"{role} {f['memory_mb']} MB {f['architecture']}" for role, f in c["functions"].items()
    )
    durations = ", ".join(f"{k} {v:.1f} ms" for k, v in c["median_duration_ms"].items())
    price_rows = [f"| `{k}` | ${v} |" for k, v in prices.USD_PER_MILLION.items()] + [
        f"| `lambda_gb_second_{k}` | ${v * 1e6:.2f} |" for k, v in prices.USD_PER_GB_SECOND.items()
    ]
    text = f"""## Cost

{c["lifecycles"]} whole lifecycles of `specs/preview-env.yml` run through the dispatcher
(`functions/dispatcher/handler.py`) under moto, after one to warm up: created and sent
LAUNCH over API Gateway, the Lambda task run by the task runner on the payload the
dispatcher queued, its Task Finished and the NEXT it fires delivered back as the bus
rules route them, DESTROY from a user's rule, the Terraform build storing its outputs and
reporting, and CodeBuild's own Build State Change. Every AWS call is seen through
botocore's event hooks (`bench/aws_calls.py`) and priced (`bench/prices.py`, {prices.REGION}
list prices as of {prices.PRICES_AS_OF}); DynamoDB request units come from the items' sizes
(`bench/dynamodb_units.py`), including the `by_spec` index's own writes (projection:
{", ".join(d["index_projections"])}). The table and the functions' memory come from
{c["deployment_source"]}: {functions}. Not priced: the user's own work (the task's
function, the build's minutes), which a Step Functions workflow pays for just the same.

An *event* is one delivery to the dispatcher: {_n(c["events_per_lifecycle"])} per
lifecycle. Step Functions Standard is charged ${sfn_price:.0f}
per million state transitions for the {_n(c["step_functions_transitions_per_lifecycle"])}
states the machine entered — the least a workflow with these states could cost, before
anything it needs to receive LAUNCH and DESTROY.

| | per million events | per million lifecycles |
|---|---|---|
| Statewright | {_usd(total)} | {_usd(c["usd_per_million_lifecycles"])} |
| Step Functions Standard (transitions only) | {_usd(sfn_per_event)} | {_usd(sfn_lifecycle)} |
| **ratio** (`cost.ratio_vs_step_functions`) | **{_n(c["ratio_vs_step_functions"])}** | |

Where Statewright's money goes, per million events:

| item | USD | share |
|---|---|---|
{chr(10).join(item_rows)}

AWS calls per event (`cost.aws_calls_per_event`; the task runner's invoke of the user's
function is among them but not priced):

| call | per event |
|---|---|
{chr(10).join(call_rows)}

**Against the physical limit** — one read and one conditional write per event: the
dispatcher makes {d["read_requests_per_event"]:.2f} DynamoDB reads and
{d["write_requests_per_event"]:.2f} writes per event, {limit["measured_requests_per_event"]:.2f}
requests against the limit's 2 ({limit["ratio"]:.2f}x). The writes above one per event
are the follow-up that records a started task as running (after LAUNCH and DESTROY) and
the spec's one-time write is not among them (it happened in the warm-up); events that
change nothing (the late Build State Change) cost a read and no write. In units, an event
costs {d["read_units_per_event"]:.2f} read units, {d["write_units_per_event"]:.2f} table
write units and {d["index_write_units_per_event"]:.2f} index write units: {_item_units(d)}

Median in-process duration per invocation (billed as measured; under moto it includes
moto's own work in place of network round trips): {durations}.
"""
    text += _cost_notices(c)
    if goal("cost.ratio_vs_step_functions").missed(r):
        text += _cost_missed(c)
    text += _cost_http_api(c)
    text += _cost_floor(r)
    text += "\nPrices used (USD per million, us-east-1):\n\n| price | USD |\n|---|---|\n"
    text += "\n".join(price_rows) + "\n"
    return text


def _cost_http_api(c: dict[str, Any]) -> str:
    h = c.get("http_api")
    if h is None:
        return ""
    rest_price = prices.USD_PER_MILLION["apigateway_rest_request"]
    http_price = prices.USD_PER_MILLION["apigateway_http_request"]
    rest_api = c["usd_per_million_events_by_item"]["api_gateway"]
    http_api = h["usd_per_million_events_by_item"]["api_gateway"]
    saving = c["usd_per_million_events"] - h["usd_per_million_events"]
    # The two runs time their invocations separately: Lambda compute moves a little too.
    remeasured = saving - (rest_api - http_api)
    noise = (
        f" (the Lambda durations, measured again, differ by {_usd(abs(remeasured))})"
        if abs(remeasured) >= 0.005
        else ""
    )
    same_calls = h["aws_calls_per_event"] == c["aws_calls_per_event"]
    calls = (
        "made exactly the same AWS calls per event as the REST run"
        if same_calls
        else "made other AWS calls per event than the REST run (see `cost.http_api`)"
    )
    text = f"""
**Behind the HTTP API option** (`api.type: http`, docs/deploy.md "The HTTP API option").
The same lifecycles again, with the facts of {h["deployment_source"]}: the dispatcher
configured for it (`STATEWRIGHT_API_TYPE=http`) and every API request sent as an HTTP API
sends it (payload format 2.0, resolved by Powertools' `APIGatewayHttpResolver`). It
{calls}; its API requests are priced at ${http_price:.2f} per million instead of
${rest_price:.2f}: API Gateway comes to {_usd(http_api)} per million events instead of
{_usd(rest_api)}, {_usd(saving)} less in all{noise}.

| | per million events | per million lifecycles | against Step Functions | against the floor |
|---|---|---|---|---|
{_notices_row("REST API (the default)", c)}
{_notices_row("HTTP API (`cost.http_api.*`)", h)}

The HTTP API's floor is {_usd(h["floor_usd_per_million_events"])} per million events
(`cost.http_api.floor_usd_per_million_events`, the same floor with the HTTP API's price).
REST stays the default (docs/deploy.md, "The HTTP API option", gives the reasons): the
saving is {100 * saving / c["usd_per_million_events"]:.0f}% of this run's bill, and for it
an HTTP API gives up what callers can see — API Gateway's own refusals in the API's error
shape, body validation at the gateway, and WAF.
"""
    g = goal("cost.http_api.ratio_vs_step_functions")
    if g.missed({"cost": c}):
        ranked = sorted(h["usd_per_million_events_by_item"].items(), key=lambda kv: -kv[1])
        top = "; ".join(f"{_ITEMS.get(k, k)}: {_usd(v)}" for k, v in ranked[:3])
        floor_ratio = h["floor_usd_per_million_events"] / h["usd_per_million_events"]
        floor_ratio *= h["ratio_vs_step_functions"]
        text += (
            f"\n**Why the goal ({g.target}) for the HTTP API is missed.** The HTTP API "
            "changes only the API Gateway item; its other items are priced as in the REST run, "
            f"most of it here: {top}. Its floor alone is {_n(floor_ratio)} of Step Functions, "
            "so the goal leaves little above the floor: whatever brings the REST run nearer "
            "its floor brings this one nearer by the same amounts.\n"
        )
    return text


def _notices_row(name: str, c: dict[str, Any]) -> str:
    cells = [
        _usd(c["usd_per_million_events"]),
        _usd(c["usd_per_million_lifecycles"]),
        _n(c["ratio_vs_step_functions"]),
        _n(c["ratio_to_floor"]),
    ]
    return f"| {name} | {' | '.join(cells)} |"


def _item_units(d: dict[str, Any]) -> str:
    """What the table write units say of the machine items' size."""
    largest = d.get("largest_item_written_bytes")
    size = f" (the largest item written: {largest:,} bytes)" if largest is not None else ""
    if d["write_units_per_event"] <= d["write_requests_per_event"]:
        return (
            f"every write stays within the 1 KB of one write unit{size}: the machine item is "
            "packed and spills older history in pages (docs/aws.md). The index write units "
            "are `by_spec`'s move at each state change and `by_due`'s entry and exit around "
            "each state's task work."
        )
    return f"some writes outgrow the 1 KB of one write unit{size}."


def _cost_notices(c: dict[str, Any]) -> str:
    off = c.get("notices_off")
    if off is None:
        return ""
    on_notices = c["floor"]["per_lifecycle"]["notices"]
    return f"""
**Without state-change notices.** The same lifecycles with cdk.json's
`notices.state_changed: false` (docs/deploy.md), for a deployment where no rule subscribes
to `Machine State Changed`: {_n(off["notices_per_lifecycle"])} notice per lifecycle put
(`Machine Deleted`) instead of {_n(on_notices)}.

| | per million events | per million lifecycles | against Step Functions | against the floor |
|---|---|---|---|---|
{_notices_row("notices on (the default)", c)}
{_notices_row("notices off (`cost.notices_off.*`)", off)}
"""


_ABOVE_FLOOR = {
    "dynamodb_writes": "DynamoDB writes: items above 1 KB (a machine carries its recent "
    "history) cost a unit per KB, and a started task is recorded as running by a second write.",
    "s3": "S3: one GET of the state's lock object before each build (a stopped build's "
    "lock is released), which the floor does without; the build's variables go through "
    "an item of the table and its outputs in its report.",
    "lambda_compute": "Lambda compute: each invocation is billed for its own duration, the "
    "floor for the median one; the task runner's compute is not in the floor.",
    "dynamodb_reads": "DynamoDB reads: reads beyond one unit per event (a deletion "
    "queries the machine's spilled history to delete it).",
    "eventbridge": "EventBridge: entries above 64 KB count once per chunk.",
    "lambda_requests": "Lambda requests: invocations beyond one per event and task start.",
    "api_gateway": "API Gateway: requests beyond one per external event.",
}


def _cost_floor(r: dict[str, Any]) -> str:
    c = r["cost"]
    if "floor" not in c:
        return ""
    f = c["floor"]
    n = f["per_lifecycle"]
    floor = c["floor_usd_per_million_events"]
    measured = c["usd_per_million_events_by_item"]
    rows = [
        f"| {_ITEMS.get(k, k)} | {_usd(measured.get(k, 0.0))} | {_usd(v)} | "
        f"{_usd(measured.get(k, 0.0) - v)} |"
        for k, v in sorted(
            f["usd_per_million_events_by_item"].items(),
            key=lambda kv: -(measured.get(kv[0], 0.0) - kv[1]),
        )
    ]
    text = f"""
**Against the floor of this architecture** (`bench/cost_floor.py`): the least this
design could be billed for the same lifecycle, counted from the run. Per event (one
delivery to the dispatcher, {_n(n["events"])} per lifecycle): one Lambda request billed
for the dispatcher's median duration ({f["dispatcher_ms"]:.1f} ms) at its memory, one read
unit and one write unit. Per lifecycle besides: the `by_spec` index's writes as DynamoDB
bills them (one when the machine is created ({_n(n["index_entries"])}), two per state
change ({_n(n["index_moves"])}: the old entry deleted, the new one put), one when it is
deleted ({_n(n["index_exits"])})); one API Gateway request per event sent over the API
({_n(n["api_requests"])}); one EventBridge event per `NEXT`/`FAILED` or task completion
({_n(n["internal_events"])}) and per notice published ({_n(n["notices"])}: `Machine State
Changed`, `Machine Deleted`); one start call per task: a Lambda request per Lambda task
started ({_n(n["lambda_task_starts"])}), and nothing for a build's `StartBuild`
({_n(n["build_starts"])}), which CodeBuild does not bill. No second write per event, no
task runner's compute, no S3 object.

| item | measured | floor | above the floor |
|---|---|---|---|
{chr(10).join(rows)}
| **total** per million events | {_usd(c["usd_per_million_events"])} | {_usd(floor)} | |

Floor: **{_usd(floor)}** per million events (`cost.floor_usd_per_million_events`); the run
spends **{_n(c["ratio_to_floor"])}x** the floor (`cost.ratio_to_floor`).
"""
    if goal("cost.ratio_to_floor").missed(r):
        above = sorted(
            ((k, measured.get(k, 0.0) - v) for k, v in f["usd_per_million_events_by_item"].items()),
            key=lambda kv: -kv[1],
        )
        top = "; ".join(f"{_ITEMS.get(k, k)}: {_usd(v)}" for k, v in above[:3] if v > 0)
        text += (
            f"\n**Why the goal (≤ 1.15) is missed.** The run spends "
            f"{_usd(c['usd_per_million_events'] - floor)} per million events above the floor, "
            f"most of it here: {top}.\n\n"
            + "\n".join(f"- {_ABOVE_FLOOR[k]}" for k, v in above if v > 0 and k in _ABOVE_FLOOR)
            + "\n"
        )
    return text


def _cost_missed(c: dict[str, Any]) -> str:
    by_item = c["usd_per_million_events_by_item"]
    ratio = c["ratio_vs_step_functions"]
    per_ratio = ratio / c["usd_per_million_events"]  # ratio per dollar per million events
    fixed = by_item.get("api_gateway", 0.0) + by_item.get("eventbridge", 0.0)
    ranked = sorted(by_item.items(), key=lambda kv: -kv[1])
    top = "; ".join(f"{_ITEMS.get(k, k)}: {_usd(v)}" for k, v in ranked[:3])
    lines = [
        "",
        f"**Why the goal ({goal('cost.ratio_vs_step_functions').target}) is missed.** "
        "Against transitions alone, Step Functions costs "
        f"{_usd(c['usd_per_million_events'] / ratio)} per million of these events; Statewright "
        f"spends {_usd(c['usd_per_million_events'])}, most of it on these ({top}).",
        f"API Gateway and EventBridge together come to {_usd(fixed)} per million events, a "
        f"ratio of {_n(fixed * per_ratio)} by themselves: every lifecycle here starts over "
        "the REST API and every transition is published for subscribers, which the Step "
        "Functions side of the comparison is not charged for.",
        "",
        "What would close it, largest first:",
        "",
    ]
    keys_only = all(p == "KEYS_ONLY" for p in c["dynamodb"]["index_projections"])
    levers = {
        "dynamodb_writes": "- DynamoDB writes: a write costs a unit per KB of the whole item"
        + (
            "; the `by_spec` index already projects keys only, so it is written only when a "
            "machine changes state, and machine items are packed and spill their history in "
            "pages, so a write is one unit. What is left above the floor: `by_due`'s entry "
            "and exit around each state's task work, and the follow-up write that records a "
            "started task as running."
            if keys_only
            else ", and an index projected `ALL` copies every write. Projecting the `by_spec` "
            "index `KEYS_ONLY` (the store already reads missing attributes with BatchGetItem) "
            "leaves index writes only to state changes; keeping less history inline keeps "
            "items under 1 KB."
        ),
        "eventbridge": "- EventBridge: `Machine State Changed` is put for every transition and "
        "`Machine Deleted` at the end; a deployment where no rule subscribes turns the first "
        "off (`notices.state_changed`, priced above), and NEXT applied in-process when the "
        "dispatcher itself fires it would remove most of the rest.",
        "api_gateway": "- API Gateway: an HTTP API costs $1.00 per million requests against the "
        "REST API's $3.50; events sent on the bus instead of over HTTP cost $1.00.",
        "s3": "- S3: what is left is the lock check before a build (a GET, $0.40 per "
        "million); it could be skipped when the state's last run is known to have ended "
        "on its own.",
        "lambda_compute": "- Lambda compute: durations here include moto's emulation; a real "
        "DynamoDB call is a network round trip, billed while waiting.",
        "lambda_requests": "- Lambda requests: one per event; batching bus events per "
        "invocation would share them.",
        "dynamodb_reads": "- DynamoDB reads: already one per event.",
    }
    lines += [levers[k] for k, _ in ranked if k in levers]
    return "\n".join(lines) + "\n"


# ---- cold start ---------------------------------------------------------------------------


def _cold_start(r: dict[str, Any]) -> str:
    c = r.get("cold_start")
    if c is None:
        return ""
    init = c["dispatcher_init_s"]
    text = f"""## Cold start

The dispatcher's import in a fresh process (`import functions.dispatcher.handler`), against a
baseline importing {c["baseline_imports"]}; {c["rounds"]} fresh processes each, alternating,
medians. In the repository both sides read compiled bytecode (the package is compiled
before the run; the venv's dependencies are compiled by uv).

| | seconds |
|---|---|
| baseline import | {c["baseline_import_s"]:.3f} |
| dispatcher import (`cold_start.dispatcher_import_s`) | {c["dispatcher_import_s"]:.3f} |
| dispatcher import + init (settings, clients, service; no AWS call yet) | {init:.3f} |
| **ratio** (`cold_start.ratio`) | **{c["ratio"]:.2f}** |
"""
    if "as_deployed_ratio" in c:
        text += _as_deployed(c)
    if "layer_mb" in c:
        text += f"""
The layer as `infra.bundling.LayerBundler` builds it: {c["layer_mb"]:.1f} MB unzipped
({c["layer_files"]} files), {c["layer_zip_mb"]:.1f} MB zipped (`cold_start.layer_mb` is the
unzipped size; Lambda's limit is 250 MB).
"""
    if goal("cold_start.ratio").missed(r):
        text += (
            "\n**Why the goal (≤ 1.5) is missed.** The dispatcher imports the statewright "
            "package's models (pydantic classes are built at import) on top of the "
            "baseline; `python -X importtime -c 'import functions.dispatcher.handler'` names "
            "the modules that cost most. Deferring those only some events need closes it.\n"
        )
    return text


def _as_deployed(c: dict[str, Any]) -> str:
    here = (
        "This machine has `python3.13`, so a layer built here ships its bytecode."
        if c["build_machine_has_runtime_python"]
        else "This machine has no `python3.13`, so a layer built here ships sources only "
        "(the synth warns): its deployments start like the last row."
    )
    base = c["as_deployed_baseline_import_s"]
    compiled = (
        f"{c['as_deployed_dispatcher_import_s']:.3f} | "
        f"**{c['as_deployed_ratio']:.2f}** (`cold_start.as_deployed_ratio`)"
    )
    sources = (
        f"{c['without_bytecode_dispatcher_import_s']:.3f} | "
        f"{c['without_bytecode_ratio']:.2f} (`cold_start.without_bytecode_ratio`)"
    )
    text = f"""
**As Lambda loads it.** Lambda mounts the layer read-only at `/opt`, where Python can
neither write bytecode nor use another version's, so the layer must ship bytecode of the
functions' own Python: `infra.bundling` compiles it with `python3.13` where the build
machine has one (docs/architecture.md#bundling). Measured the same way here: the layer's
modules (this machine's build of `requirements.txt`, and the package) in a read-only copy
compiled by the bundler's `compile_bytecode` with this interpreter, the dispatcher's folder
beside it (functions ship no bytecode), every import with `PYTHONDONTWRITEBYTECODE`, the
baseline importing from the same copy. {here}

| | seconds | against the baseline |
|---|---|---|
| baseline import, from the read-only layer | {base:.3f} | |
| dispatcher import, layer with its bytecode | {compiled} |
| dispatcher import, layer of sources only | {sources} |
"""
    if c["as_deployed_ratio"] > goal("cold_start.as_deployed_ratio").threshold:
        text += (
            "\n**Why the goal (≤ 1.5) is missed.** Even with its bytecode, the dispatcher "
            f"from the read-only layer takes {c['as_deployed_ratio']:.2f}x the baseline's "
            f"import against {c['ratio']:.2f}x in the repository: what it imports beyond "
            "the baseline (the statewright package, its models built at import) costs "
            "more from a copy whose files the page cache has seen less often; "
            "`python -X importtime` on the copy names the modules to defer.\n"
        )
    return text


# ---- local HTTP ---------------------------------------------------------------------------


def _local_http(r: dict[str, Any]) -> str:
    h = r.get("local_http")
    if h is None:
        return ""
    b = h["bare_http_server"]
    ratio = h["ratio_vs_bare_http_server"]
    text = f"""## Local HTTP

A real `statewright serve` process and Python's `http.server.ThreadingHTTPServer` answering
200 (`bench/bare_server.py`), both on 127.0.0.1, each driven for {h["seconds"]:g} s (after a
warm-up) by the same {h["clients"]} client threads with keep-alive connections, in the same
run. Each client sends `POST /machines/{{id}}/events {{"event": "TOUCH"}}` to its own
machine: a no-op that is still validated, read, decided, recorded in history and written
(SQLite). The clients run on the same machine as the servers.

| | events/s | p50 ms | p99 ms | requests |
|---|---|---|---|---|
{_load_row("`statewright serve`", h)}
{_load_row("bare HTTP server", b)}
| **ratio** (`local_http.ratio_vs_bare_http_server`) | **{ratio:.2f}** | | | |

The server resolves requests in parallel, one thread per connection (the resolver keeps
each request's state per thread); a request waiting on the database holds up no other.
Under {h["clients"]} clients the p50 and p99 above (`local_http.p50_ms`,
`local_http.p99_ms`) include the wait for the interpreter's lock, which the threads share.
"""
    if "next_hop_p50_ms" in h:
        text += f"""
Latency with one client and nothing else running: {h["one_client_events"]} no-op events
sent one at a time, and {h["next_hops"]} `NEXT` hops — after LAUNCH's answer (the machine in
PROVISION, a state without tasks, its NEXT on the local bus), until a `GET` sent right after
the previous one shows it in RUN (over by at most one GET's time).

| | p50 ms | p99 ms |
|---|---|---|
| one event (`local_http.one_client_p50_ms`) | {_ms(h, "one_client")} |
| a `NEXT` hop (`local_http.next_hop_p50_ms`) | {_ms(h, "next_hop")} |
"""
    if goal("local_http.ratio_vs_bare_http_server").missed(r):
        text += _local_http_missed(h)
    return text


def _local_http_missed(h: dict[str, Any]) -> str:
    b = h["bare_http_server"]
    ours, bare = 1000 / h["events_per_second"], 1000 / b["events_per_second"]
    alone = (
        f" With one client, an event is answered in {h['one_client_p50_ms']:.2f} ms (p50),"
        f" {1000 / h['one_client_p50_ms']:,.0f} a second from one connection: the threads "
        f"of {h['clients']} clients slow each other down rather than add up."
        if "one_client_p50_ms" in h
        else ""
    )
    return (
        "\n**Why the goal (≥ 0.4) is missed.** Under load the server answers an event every "
        f"{ours:.2f} ms against the bare server's {bare:.2f} ms; the goal needs "
        f"{bare / 0.4:.2f} ms.{alone} Both servers are Python threads sharing one "
        "interpreter lock, so parallel requests overlap only where they wait (SQLite, the "
        "socket), and a thread that waited queues for the lock behind the others' "
        "computing. The CPU of a request is the rest: HTTP parsing (as the bare server's), "
        "Powertools' request and response validation (under a profiler as long as the "
        "service call itself), the service's read, decision and SQLite transaction. What "
        "would close it: a lighter validation path for events, and several server "
        "processes over the one SQLite file (each with the interpreter to itself).\n"
    )


# ---- scale --------------------------------------------------------------------------------


def _scaling(r: dict[str, Any]) -> str:
    s = r.get("scaling")
    if s is None:
        return ""
    small, large = s["sizes"]
    runs = ", ".join(f"{x:.2f}" for x in s.get("run_ratios", [s["ratio"]]))
    text = f"""## Scale

The time of one no-op event (`TOUCH`, through `Service.send_event`: read, decide,
conditional write, history) with {small:,} and with {large:,} machines stored. Store:
{s["store"]} — the store where size could show, a B-tree in a file that outgrows SQLite's
page cache ({s["database_mb"][str(large)]:.0f} MB here). DynamoDB finds an item by its
partition key whatever the table's size, and moto, a Python dict, could only confirm
that about itself. Both databases are filled through the store's row format in one
transaction ({s["fill_seconds"][str(large)]:.1f} s for {large:,}); events go to machines
picked at random, {s["batches"]} batches of {s["events_per_batch"]} alternating between
the two, medians. The whole run is made {s.get("runs", 1)} times; the median run is shown
(the runs' ratios: {runs}).

| machines | ms per event |
|---|---|
| {small:,} | {s[f"per_event_ms_at_{small}"]:.3f} |
| {large:,} | {s[f"per_event_ms_at_{large}"]:.3f} |
| **ratio** (`scaling.ratio`) | **{s["ratio"]:.2f}** |
"""
    if goal("scaling.ratio").missed(r):
        at_small, at_large = s[f"per_event_ms_at_{small}"], s[f"per_event_ms_at_{large}"]
        text += (
            f"\n**Why the goal (≤ 1.2) is missed.** The size costs "
            f"{at_large - at_small:.3f} ms per event here; the ratio sets that against "
            f"the {at_small:.3f} ms an event costs with {small:,} machines, so the faster "
            "the store and the engine get, the more the same extra shows (the engine's "
            "speed-up of this release took the time per event down at both sizes and the "
            "ratio up). With 100,000 machines every event "
            "touches pages no other recent event touched — the machine's row and its "
            "history's leaf — and the write-ahead log's checkpoints copy each of them back "
            "into a file larger than any cache, where with 100 machines the same few pages "
            "are rewritten. Fewer pages per event (history kept with the machine's row) or "
            "checkpoints off the request path would close it.\n"
        )
    return text


# ---- engine -------------------------------------------------------------------------------


def _engine(r: dict[str, Any]) -> str:
    e = r.get("engine")
    if e is None:
        return ""
    with_tasks = _n(e["transitions_per_second_with_tasks"])
    text = f"""## Engine

Pure transitions per second: Statewright's engine (`statewright.engine`, no I/O),
[python-statemachine](https://pypi.org/project/python-statemachine/) and
[transitions](https://pypi.org/project/transitions/) running the same machine —
preview-env's states and transitions, INIT → PROVISION → RUN → TEARDOWN on LAUNCH, NEXT,
DESTROY — construction included: each lifecycle builds a machine and makes its
{e["transitions_per_lifecycle"]} transitions. {e["lifecycles_per_round"]} lifecycles per round,
{e["rounds"]} rounds taking turns, medians. The peers know no tasks, so the machine runs
without them; Statewright still records its history and the bus events it would publish.
transitions is built with `auto_transitions=False` (its default adds a `to_<state>`
transition per state: another machine).

| | transitions/s |
|---|---|
| Statewright (`engine.transitions_per_second`) | {_n(e["transitions_per_second"])} |
| python-statemachine | {_n(e["python_statemachine_transitions_per_second"])} |
| transitions (pytransitions) | {_n(e["pytransitions_transitions_per_second"])} |
| **ratio** against the faster peer (`engine.ratio`) | **{e["ratio"]:.2f}** |
| Statewright on the full preview-env, task starts and results included | {with_tasks} |
"""
    text += (
        "\nA decision works on plain dataclasses (the machine, its task records, history "
        "entries, bus events); pydantic validates them only where a store loads a row "
        '(docs/architecture.md, "What is validated where"). Counted with callgrind (at '
        "commit 0c6c328, not in this run): 493k instructions per lifecycle against "
        "transitions' 614k; with pydantic models on the hot path (validated history "
        "entries and bus events, pydantic's attribute sets, model copies) it was 826k.\n"
    )
    if goal("engine.ratio").missed(r):
        text += (
            "\n**Why the goal (≥ 1.0) is missed.** A lifecycle here is four decisions "
            "(create, LAUNCH, NEXT, DESTROY), each on a copy of the machine (so the input is "
            "never changed), recording history entries (seven per lifecycle) and the bus "
            "events it would publish (six) — work the peers do not do. By the instruction "
            f"counts above the engine is ahead; this run's time ratio ({e['ratio']:.2f}) is "
            "not explained by them: measure again on a quiet machine "
            "(`python -m bench --only engine`).\n"
        )
    return text


def _ms(section: dict[str, Any], prefix: str) -> str:
    return f"{section[prefix + '_p50_ms']:.2f} | {section[prefix + '_p99_ms']:.2f}"


def _load_row(name: str, load: dict[str, Any]) -> str:
    cells = [_n(load["events_per_second"]), f"{load['p50_ms']:.2f}", f"{load['p99_ms']:.2f}"]
    return f"| {name} | {' | '.join(cells)} | {load['requests']} |"


def _reproducing() -> str:
    return """## Reproducing

`make bench` (or `.venv/bin/python -m bench`; `--only NAME` runs one benchmark and prints
it without writing anything). The code is in `bench/`, one module per benchmark; the
smoke test `tests/unit/bench/` runs each at a tiny size.
"""
