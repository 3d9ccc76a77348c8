"""The cost floor: the least this architecture could be billed for the lifecycle the cost
benchmark runs, priced with ``bench.prices``.

What the floor counts (from the run's own counts, per lifecycle):

- per event (one delivery to the dispatcher): one Lambda request, billed for the
  dispatcher's median measured duration at its memory; one read unit; one write unit;
- the ``by_spec`` index's writes as DynamoDB bills a keys-only index whose sort key holds
  the state: one when a machine enters it (creation) or leaves it (deletion), two when the
  state changes (the old entry deleted, the new one put);
- one API Gateway request per event sent over the API, at the deployment's API's price
  (the REST API's, or the HTTP API's with ``api.type: http``);
- one EventBridge event per ``NEXT``/``FAILED``, per task completion (``Task Finished``)
  and per notice (``Machine State Changed``, ``Machine Deleted``) the run published;
- one start call per task: a Lambda request for a Lambda task (CodeBuild charges
  nothing for ``StartBuild``, only the build's minutes, the user's work).

Nothing else: no second write per event, no task runner's compute, no S3 object. The
floor is what the figures are measured against (``cost.ratio_to_floor``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from bench import prices
from bench.template import Function

# Index writes DynamoDB bills per change of a keys-only index entry (its items < 1 KB).
INDEX_UNITS_ON_ENTER = 1
INDEX_UNITS_ON_MOVE = 2  # the sort key changes: delete the old entry, put the new one
INDEX_UNITS_ON_EXIT = 1


@dataclass(frozen=True)
class Lifecycle:
    """What a lifecycle asks of AWS that the floor prices, counted from a run."""

    events: float  # deliveries to the dispatcher (API requests and bus events)
    api_requests: float  # of which over API Gateway
    internal_events: float  # NEXT/FAILED and Task Finished put on the bus
    notices: float  # Machine State Changed and Machine Deleted put on the bus
    lambda_task_starts: float
    build_starts: float
    index_entries: float  # machines created
    index_moves: float  # state changes after creation
    index_exits: float  # machines deleted

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# The price of one request by API Gateway API (cdk.json's api.type).
API_REQUEST_PRICES = {"rest": "apigateway_rest_request", "http": "apigateway_http_request"}


def usd_by_item(
    lifecycle: Lifecycle, dispatcher: Function, dispatcher_ms: float, *, api: str = "rest"
) -> dict[str, float]:
    """The floor of one lifecycle in USD, by the same items as the measured cost, with
    the API requests at the price of ``api`` (rest | http)."""
    p = prices.USD_PER_MILLION
    billed_s = math.ceil(dispatcher_ms) / 1000
    gb_seconds = lifecycle.events * dispatcher.memory_mb / 1024 * billed_s
    index_units = (
        lifecycle.index_entries * INDEX_UNITS_ON_ENTER
        + lifecycle.index_moves * INDEX_UNITS_ON_MOVE
        + lifecycle.index_exits * INDEX_UNITS_ON_EXIT
    )
    lambda_requests = lifecycle.events + lifecycle.lambda_task_starts
    bus_events = lifecycle.internal_events + lifecycle.notices
    return {
        "lambda_requests": lambda_requests * p["lambda_request"] / 1e6,
        "lambda_compute": gb_seconds * prices.USD_PER_GB_SECOND[dispatcher.architecture],
        "api_gateway": lifecycle.api_requests * p[API_REQUEST_PRICES[api]] / 1e6,
        "dynamodb_reads": lifecycle.events * p["dynamodb_read_unit"] / 1e6,
        "dynamodb_writes": (lifecycle.events + index_units) * p["dynamodb_write_unit"] / 1e6,
        "eventbridge": bus_events * p["eventbridge_event"] / 1e6,
        "s3": 0.0,
    }
