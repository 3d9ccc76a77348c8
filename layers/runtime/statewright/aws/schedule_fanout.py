"""A spec schedule's fire in the dispatcher (docs/aws.md#schedules): EventBridge
Scheduler invokes it with ``{"statewright_schedule": {"spec", "schedule", "fire"}}``; it
sends pages of the fan-out (statewright/schedules.py) while it has time, and hands the
rest to an asynchronous invocation of itself with the next page's signed token
(``"after"``), so a fire reaches every machine of the spec however many there are.

A failed page raises: Lambda retries the invocation (and Scheduler its delivery), which
sends the page again; a machine takes each fire once, so nothing is applied twice."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import ValidationError

from statewright.aws.observability import METRICS, logger
from statewright.errors import StatewrightError
from statewright.schedules import TARGET_KEY, ScheduleFire
from statewright.service import Service

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

# Time kept free for the page in progress and the hand-over (the dispatcher runs 29 s).
RESERVE_MILLIS: Final = 12_000
# Pages per invocation at most, so one invocation's work stays bounded however fast the
# table answers (100 machines each: 5,000 machines).
MAX_PAGES: Final = 50


class LambdaContext(Protocol):
    invoked_function_arn: str

    def get_remaining_time_in_millis(self) -> int: ...


def fan_out(
    service: Service,
    event: Mapping[str, Any],
    context: LambdaContext,
    *,
    lambda_client: LambdaClient,
) -> str:
    """Run the pages of the fire in ``event``: ``applied`` when the last was sent,
    ``continued`` when a follow-up invocation sends the rest, ``refused`` for input that
    is not a fire."""
    try:
        fire = ScheduleFire.model_validate(event[TARGET_KEY])
    except ValidationError as exc:
        logger.warning("schedule fire refused: %s", exc.errors(include_input=False))
        METRICS.count("events_refused")
        return "refused"
    pages = 0
    while True:
        try:
            token = service.fan_out_schedule(fire)
        except StatewrightError as exc:  # a continuation token not issued here
            logger.warning("schedule fire refused: %s (%s)", exc.message, exc.code)
            METRICS.count("events_refused")
            return "refused"
        pages += 1
        if token is None:
            return "applied"
        fire = fire.continued(token)
        if pages >= MAX_PAGES or context.get_remaining_time_in_millis() < RESERVE_MILLIS:
            _continue(fire, context, lambda_client)
            return "continued"


def _continue(fire: ScheduleFire, context: LambdaContext, lambda_client: LambdaClient) -> None:
    lambda_client.invoke(
        FunctionName=context.invoked_function_arn,
        InvocationType="Event",
        Payload=json.dumps(fire.target_input(), separators=(",", ":")).encode(),
    )
    logger.info(
        "schedule %s of spec %s, fire %s: continued in a follow-up invocation",
        fire.schedule,
        fire.spec,
        fire.fire,
    )


def is_schedule_fire(event: Any) -> bool:
    return isinstance(event, Mapping) and TARGET_KEY in event
