"""AWS's limits, where moto and dynalite are more lenient (or wrong), for every AWS test.

``install()`` hooks every botocore client created afterwards (as moto itself does,
through ``botocore.handlers.BUILTIN_HANDLERS``) so that a request AWS would refuse is
refused here too, with the error code and message AWS answers:

- DynamoDB's 400 KB item (attribute names and values, counted as AWS does): moto counts
  an overwritten attribute twice and stops at 405,000 bytes; its check is replaced.
  dynalite counts right (for ASCII strings) and needs nothing.
- Lambda: a synchronous invoke takes and answers at most 6 MB; an asynchronous one (and
  its on-failure record) takes at most 1 MB since January 2026.
- EventBridge ``PutEvents``: the entries of one request total at most 1 MB (raised from
  256 KB in January 2026).
- EventBridge Scheduler: a schedule name has at most 64 characters of
  ``[0-9a-zA-Z-_.]``, and a one-time expression is ``at(yyyy-mm-ddThh:mm:ss)`` with a
  real date and time (moto takes any name and any expression).

API Gateway's own limits (29 s, 10 MB) apply where tests play API Gateway:
:func:`api_gateway_answer`. CodeBuild's idempotency-token rule is emulated per client
by tests/integration/aws/codebuild_tokens.py."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import boto3
import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from statewright.aws.item_size import item_size

DYNAMODB_ITEM_BYTES = 400 * 1024
LAMBDA_SYNC_BYTES = 6 * 1024 * 1024
LAMBDA_ASYNC_BYTES = 1024 * 1024
EVENTBRIDGE_ENTRIES_BYTES = 1024 * 1024
SCHEDULE_NAME_CHARS = 64
SCHEDULE_NAME = re.compile(r"[0-9a-zA-Z_.-]+")
SCHEDULE_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
API_GATEWAY_TIMEOUT_SECONDS = 29.0
API_GATEWAY_PAYLOAD_BYTES = 10 * 1024 * 1024

_PARAMS = "strict_aws_params"


def _refuse(status: int, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    """What botocore makes of AWS's error answer: raised as ``client.exceptions.<code>``."""
    http = AWSResponse("https://strict-aws.invalid/", status, {}, None)
    return http, {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }


def _size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes | bytearray):
        return len(value)
    if hasattr(value, "read"):  # a file-like payload
        data = value.read()
        value.seek(0)
        return len(data)
    return len(json.dumps(value).encode())


@contextlib.contextmanager
def strict_aws() -> Iterator[None]:
    """One test's AWS, with the hooks installed."""
    install()
    yield


# ---- the hooks ------------------------------------------------------------------------


def _remember_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    # before-call sees the serialized request; the checks want the API's parameters.
    context[_PARAMS] = params


def _lambda_invoke(context: dict[str, Any], **_: Any) -> Any:
    params = context.get(_PARAMS, {})
    size = _size(params.get("Payload"))
    if params.get("InvocationType") == "Event":
        if size > LAMBDA_ASYNC_BYTES:
            return _refuse(
                413,
                "RequestEntityTooLargeException",
                f"{size} byte payload is too large for the Event invocation type "
                f"(limit {LAMBDA_ASYNC_BYTES} bytes)",
            )
    elif size > LAMBDA_SYNC_BYTES:
        return _refuse(
            413,
            "RequestEntityTooLargeException",
            f"Request must be smaller than {LAMBDA_SYNC_BYTES} bytes for the InvokeFunction "
            "operation",
        )
    return None


def _lambda_answer(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """A synchronous answer over 6 MB is the function's error on AWS, not its result."""
    params = context.get(_PARAMS, {})
    body = parsed.get("Payload")
    if params.get("InvocationType", "RequestResponse") != "RequestResponse" or body is None:
        return
    data = body.read()
    if len(data) > LAMBDA_SYNC_BYTES:
        data = json.dumps(
            {
                "errorMessage": "Response payload size exceeded maximum allowed payload size "
                f"({LAMBDA_SYNC_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
        ).encode()
        parsed["FunctionError"] = "Unhandled"
    parsed["Payload"] = StreamingBody(io.BytesIO(data), len(data))


def _put_events(context: dict[str, Any], **_: Any) -> Any:
    entries = context.get(_PARAMS, {}).get("Entries", [])
    # AWS's entry size: Source, DetailType, Detail and Resources as UTF-8, Time 14 bytes.
    total = sum(
        _size(e.get("Source"))
        + _size(e.get("DetailType"))
        + _size(e.get("Detail"))
        + sum(_size(r) for r in e.get("Resources", []))
        + (14 if "Time" in e else 0)
        for e in entries
    )
    if total > EVENTBRIDGE_ENTRIES_BYTES:
        return _refuse(
            400,
            "ValidationException",
            "Total size of the entries in the request is over the limit.",
        )
    return None


def _schedule(context: dict[str, Any], **_: Any) -> Any:
    params = context.get(_PARAMS, {})
    name = str(params.get("Name", ""))
    if len(name) > SCHEDULE_NAME_CHARS:
        return _refuse(
            400,
            "ValidationException",
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
            f"constraint: Member must have length less than or equal to {SCHEDULE_NAME_CHARS}",
        )
    if not SCHEDULE_NAME.fullmatch(name):
        return _refuse(
            400,
            "ValidationException",
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {SCHEDULE_NAME.pattern}",
        )
    expression = str(params.get("ScheduleExpression", ""))
    if expression.startswith("at(") and not _valid_at(expression):
        return _refuse(400, "ValidationException", f"Invalid Schedule Expression {expression}.")
    return None


def _valid_at(expression: str) -> bool:
    """``at(yyyy-mm-ddThh:mm:ss)``, a real date and time (no zone, no fraction)."""
    found = SCHEDULE_AT.fullmatch(expression)
    if found is None:
        return False
    try:
        datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S")  # at() has no zone: a naive time
    except ValueError:
        return False
    return True


_HOOKS: list[tuple[str, Callable[..., Any]]] = [
    ("before-parameter-build", _remember_params),
    ("before-call.lambda.Invoke", _lambda_invoke),
    ("after-call.lambda.Invoke", _lambda_answer),
    ("before-call.eventbridge.PutEvents", _put_events),
    ("before-call.scheduler.CreateSchedule", _schedule),
    ("before-call.scheduler.UpdateSchedule", _schedule),
]
_installed = False


def install() -> None:
    """Hook every client created from now on, and correct moto's item size (once)."""
    global _installed  # botocore's handler list is process-wide
    if _installed:
        return
    botocore.handlers.BUILTIN_HANDLERS.extend(_HOOKS)
    # A session registers the built-in handlers when it is made: drop boto3's default
    # session so that boto3.client() makes a hooked one.
    boto3.DEFAULT_SESSION = None
    _correct_moto_item_size()
    _installed = True


# ---- DynamoDB's item size under moto --------------------------------------------------


def _plain(value: Any) -> Any:
    """moto's DynamoType (and containers of them) as the wire's AttributeValue."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if isinstance(value, DynamoType):
        inner = value.value
        if value.type == "L":
            inner = [_plain(v) for v in inner]
        elif value.type == "M":
            inner = {k: _plain(v) for k, v in inner.items()}
        elif value.type == "B" and isinstance(inner, bytes | bytearray):
            return {"B": bytes(inner)}
        return {value.type: inner}
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "L":
            return {"L": [_plain(v) for v in inner]}
        if kind == "M":
            return {"M": {k: _plain(v) for k, v in inner.items()}}
    return value


def _correct_moto_item_size() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict

    def __setitem__(self: dict[str, Any], key: str, value: Any) -> None:
        after = {**self, key: value}
        if item_size({k: _plain(v) for k, v in after.items()}) > DYNAMODB_ITEM_BYTES:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = __setitem__  # type: ignore[method-assign,assignment]


# ---- API Gateway ----------------------------------------------------------------------


def api_gateway_answer(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    event: dict[str, Any],
    context: Any,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """What API Gateway answers for a Lambda proxy integration: 413 for a request over
    10 MB, 504 when the function takes longer than 29 s, 502 for an answer Lambda could
    not return (over 6 MB)."""
    if _size(event.get("body")) > API_GATEWAY_PAYLOAD_BYTES:
        return _gateway(413, "Request Too Long")
    started = clock()
    answer = handler(event, context)
    if clock() - started > API_GATEWAY_TIMEOUT_SECONDS:
        return _gateway(504, "Endpoint request timed out")
    if len(json.dumps(answer).encode()) > LAMBDA_SYNC_BYTES:
        return _gateway(502, "Internal server error")
    return answer


def _gateway(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
    }
