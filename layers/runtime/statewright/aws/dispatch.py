"""Routing for the dispatcher Lambda: which kind of event arrived, and what the service
should do with it.

- API Gateway requests go through the same routes as ``statewright serve``
  (statewright.api): REST proxy events, or an HTTP API's payload format 2.0 events when
  the deployment's API is one (``STATEWRIGHT_API_TYPE=http``, from cdk.json's
  ``api.type``). A request of the other format is answered 500 and logged: the function
  and its API disagree, which only a hand-changed deployment could cause.
- EventBridge ``Machine Event`` and ``Task Finished`` go to ``Service.handle_bus_event``
  (it checks that only source ``statewright`` sends NEXT, FAILED and Task Finished, and
  that a ``Task Finished`` carries the report token of exactly the attempt it names:
  statewright.report_tokens).
- A build's own ``Task Finished`` carries its outputs; one whose outputs were too big for
  an event names the object the build stored them in instead, which is read here first.
- CodeBuild's ``Build State Change`` (source ``aws.codebuild``) becomes the ``Task
  Finished`` of the attempt the build was started for when the build failed, unless the
  buildspec's own report got there first. A SUCCEEDED build's report is always on its
  way (the build fails when EventBridge does not accept it), so SUCCEEDED waits for it
  (``awaiting_report``); the attempt's timeout covers a report that never comes. It
  carries the report token the build was started with (its environment).
- EventBridge Scheduler's fire of a spec schedule (``{"statewright_schedule": ...}``)
  fans out to the spec's machines in pages (statewright.aws.schedule_fanout).
- The task runner's on-failure destination (``Lambda Function Invocation Result -
  Failure``, source ``lambda``) fails the attempt it was running, with the report token
  of the payload the runner was invoked with.
- A timer's schedule (EventBridge Scheduler) invokes it with ``{"statewright_timer":
  <the timer>}``: ``Service.fire_timer``.


A bus event that is refused, stale, a duplicate or not ours is logged, counted and
dropped: raising would only make EventBridge retry what can never succeed."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from statewright.aws import codebuild_executor as cb
from statewright.aws import schedule_fanout
from statewright.aws.observability import METRICS, logger, run
from statewright.aws.wiring import Runtime, runtime
from statewright.engine import Outcome
from statewright.errors import InvalidRequest, MachineNotFound
from statewright.limits import TASK_OUTPUT_MAX_BYTES
from statewright.model import EVENT_SOURCE, OUTPUT_TOO_LARGE, Machine
from statewright.timers import TARGET_KEY as TIMER_KEY
from statewright.timers import Timer

CODEBUILD_SOURCE = "aws.codebuild"
CODEBUILD_DETAIL_TYPE = "CodeBuild Build State Change"
LAMBDA_FAILURE_SOURCE = "lambda"
LAMBDA_FAILURE_DETAIL_TYPE = "Lambda Function Invocation Result - Failure"
BUILD_FAILED = frozenset({"FAILED", "FAULT", "STOPPED", "TIMED_OUT"})
BUILD_SUCCEEDED = "SUCCEEDED"
IGNORED = "ignored"
AWAITING_REPORT = "awaiting_report"
# What a build's report names instead of carrying outputs too big for an event.
OUTPUTS_OBJECT = "outputs_object"
# A stored result is the output as JSON with ASCII escapes (up to 3x its compact UTF-8
# size) and the redacted names: past this it cannot fit a task's 32 KiB output.
STORED_OUTPUTS_READ_MAX_BYTES = 1024 * 1024


def handle(event: Any, context: Any, *, handler_dir: Path | None = None) -> Any:
    """The dispatcher: one Lambda event in, the answer out."""
    return run(
        functools.partial(_dispatch, handler_dir=handler_dir),
        event,
        context,
        function="dispatcher",
    )


def _dispatch(event: Any, context: Any, *, handler_dir: Path | None) -> Any:
    rt = runtime(handler_dir=handler_dir, metrics=METRICS)
    api = api_format(event)
    if api is not None:
        if api != rt.settings.API_TYPE:
            return _misdirected_request(api, rt.settings.API_TYPE)
        return rt.api.resolve(dict(event), context)
    if isinstance(event, Mapping) and "detail-type" in event and "source" in event:
        return {"outcome": route_bus_event(rt, event)}
    if schedule_fanout.is_schedule_fire(event):
        outcome = schedule_fanout.fan_out(
            rt.service, event, context, lambda_client=rt.lambda_client
        )
        return {"outcome": outcome}
    if isinstance(event, Mapping) and TIMER_KEY in event:
        return {"outcome": timer_fire(rt, event[TIMER_KEY])}
    logger.error("not an API Gateway or EventBridge event; dropped", extra={"keys": _keys(event)})
    METRICS.count("events_ignored")
    return {"outcome": IGNORED}


def api_format(event: Any) -> Literal["rest", "http"] | None:
    """Which API Gateway API sent ``event``: a REST API (proxy event), an HTTP API
    (payload format 2.0), or none (not an API request)."""
    if not isinstance(event, Mapping) or "requestContext" not in event:
        return None
    if "httpMethod" in event:
        return "rest"
    if event.get("version") == "2.0" and "routeKey" in event:
        return "http"
    return None


def _misdirected_request(arrived: str, configured: str) -> dict[str, Any]:
    """The answer to an API request whose format is not the configured API's: 500 in
    the format it came in (the caller did nothing wrong; the deployment is miswired)."""
    from aws_lambda_powertools.event_handler import Response, content_types

    from statewright.api import http_api_result, proxy_result

    message = (
        f"this control plane is configured for an API Gateway {configured.upper()} API "
        f"(STATEWRIGHT_API_TYPE) but the request came from a {arrived.upper()} API"
    )
    logger.error("API request refused: %s", message)
    METRICS.count("events_ignored")
    response: Response[Any] = Response(
        status_code=500,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": "misconfigured", "message": message}},
    )
    return http_api_result(response) if arrived == "http" else proxy_result(response)


def timer_fire(rt: Runtime, payload: Any) -> str:
    """A timer's schedule fired (statewright.aws.scheduler_timers): EventBridge Scheduler
    invokes the dispatcher with the timer as it was armed. Anything else under the key is
    refused and dropped: no retry could make it a timer."""
    try:
        timer = Timer.model_validate(payload)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'timer'}: {e['msg']}" for e in exc.errors()]
        logger.error("timer fire refused: not a timer (%s)", "; ".join(problems))
        METRICS.count("events_refused")
        return Outcome.REFUSED.value
    return rt.service.fire_timer(timer).value


def _keys(event: Any) -> list[str]:
    return sorted(str(k) for k in event) if isinstance(event, Mapping) else []


def route_bus_event(rt: Runtime, event: Mapping[str, Any]) -> str:
    source = str(event["source"])
    detail_type = str(event["detail-type"])
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return _ignored(f"{detail_type} from {source} has no detail object")
    if detail_type == "Task Finished" and source == EVENT_SOURCE and OUTPUTS_OBJECT in detail:
        completed = _with_stored_outputs(rt, detail)
        if isinstance(completed, str):
            return completed
        detail = completed
    if detail_type in ("Machine Event", "Task Finished"):
        return rt.service.handle_bus_event(source, detail_type, detail).value
    if source == CODEBUILD_SOURCE and detail_type == CODEBUILD_DETAIL_TYPE:
        return codebuild_state_change(rt, detail)
    if source == LAMBDA_FAILURE_SOURCE and detail_type == LAMBDA_FAILURE_DETAIL_TYPE:
        return task_runner_failure(rt, detail)
    return _ignored(f"{detail_type!r} from {source!r} is not an event Statewright handles")


def _ignored(reason: str) -> str:
    logger.warning("bus event dropped: %s", reason)
    METRICS.count("events_ignored")
    return IGNORED


# ---- CodeBuild ----------------------------------------------------------------------


def _build_short_id(build_id: str) -> str:
    """``arn:...:build/<project>:<uuid>`` (the event) -> ``<project>:<uuid>`` (StartBuild)."""
    return build_id.split(":build/", 1)[-1]


def _build_environment(detail: Mapping[str, Any]) -> dict[str, str]:
    info = detail.get("additional-information") or {}
    variables = (info.get("environment") or {}).get("environment-variables") or []
    return {
        str(v["name"]): str(v.get("value", ""))
        for v in variables
        if isinstance(v, Mapping) and "name" in v
    }


def codebuild_state_change(rt: Runtime, detail: Mapping[str, Any]) -> str:
    status = str(detail.get("build-status", ""))
    if status != BUILD_SUCCEEDED and status not in BUILD_FAILED:
        return IGNORED  # IN_PROGRESS and friends: the build is still running
    build_id = _build_short_id(str(detail.get("build-id", "")))
    env = _build_environment(detail)
    machine_id = env.get(cb.MACHINE_ID)
    if not machine_id:
        return _ignored(f"build {build_id} was not started by Statewright (no {cb.MACHINE_ID})")
    try:
        machine = rt.service.get_machine(machine_id)
    except (MachineNotFound, InvalidRequest):
        logger.info("build %s finished for machine %s, which is gone", build_id, machine_id)
        METRICS.count("events_stale")
        return "stale"
    attempt = _attempt_of(machine, build_id, env)
    if isinstance(attempt, str):
        logger.info("build %s of machine %s: %s", build_id, machine_id, attempt)
        METRICS.count(f"events_{attempt}")
        return attempt
    task, epoch, number, in_flight = attempt
    if status == BUILD_SUCCEEDED and in_flight:
        # The build's report was accepted before it could succeed: it completes the
        # attempt, outputs and all. A report that never comes: the attempt's timeout.
        logger.info("build %s of machine %s succeeded; awaiting its report", build_id, machine_id)
        METRICS.count(f"events_{AWAITING_REPORT}")
        return AWAITING_REPORT
    report: dict[str, Any] = {
        "machine_id": machine_id,
        "epoch": epoch,
        "task": task,
        "attempt": number,
        # What the build was started with: a build of this attempt's start, not a forgery.
        "report_token": env.get(cb.REPORT_TOKEN, ""),
    }
    if status == BUILD_SUCCEEDED:
        # An attempt already over whose run held a state (left, or timed out): the
        # run's end frees the state; its result is no attempt's any more.
        report.update(status="succeeded")
    else:
        report.update(
            status="failed",
            error=f"terraform {env.get(cb.ACTION, '')} build {build_id} ended {status}; "
            "see its CodeBuild logs",
        )
    return rt.service.handle_bus_event(EVENT_SOURCE, "Task Finished", report).value


class _BuildsAttempt(NamedTuple):
    task: str
    epoch: int
    attempt: int
    in_flight: bool  # the task's current attempt, pending or running


def _attempt_of(machine: Machine, build_id: str, env: Mapping[str, str]) -> _BuildsAttempt | str:
    """The attempt the build ran, when it is still unfinished or its run still holds a
    state; else "stale" or "duplicate".

    The build id recorded at start names the task; the STATEWRIGHT_* variables the build
    was started with name the attempt (and the task, when the start's follow-up write
    that records the build id was lost). Two builds of one attempt (a start repeated
    after CodeBuild's idempotency window) ran the same action on the same state, so
    either one completes it."""
    by_run = [name for name, rec in machine.tasks.items() if rec.run_id == build_id]
    task = by_run[0] if by_run else env.get(cb.TASK)
    record = machine.tasks.get(task) if task else None
    if task is None or record is None:
        return "stale"
    try:
        epoch = int(env.get(cb.EPOCH) or record.epoch)
        number = int(env.get(cb.ATTEMPT) or record.attempt)
    except ValueError:
        return "stale"
    if not by_run and not (env.get(cb.EPOCH) and env.get(cb.ATTEMPT)):
        return "stale"  # neither recorded nor self-describing: not this attempt's build
    # A run still holding its state file (its state was left, or it was stopped): its
    # end frees the state for the run waiting on it (docs/runtime.md).
    holds_state = any(run.is_attempt(task, epoch, number) for run in machine.state_runs.values())
    current = record.epoch == epoch == machine.epoch and record.attempt == number
    if not (current or holds_state):
        return "stale"
    unfinished = record.status in ("pending", "running")
    if not holds_state and not unfinished:
        return "duplicate"  # the buildspec's own report came first
    return _BuildsAttempt(task, epoch, number, in_flight=current and unfinished)


class StoredOutputs(BaseModel):
    """What the buildspec stores beside the state when its result is too big for its
    report: the task output (``{name: value}``, sensitive outputs already left out inside
    the build; a plan's summary) and the names left out — and, when the build did its job
    but the task fails (a plan with changes under ``fail_on_changes``:
    ``DriftDetected``), why."""

    model_config = ConfigDict(extra="ignore")

    outputs: dict[str, Any]
    redacted_outputs: list[str]
    error: str | None = None
    error_type: str | None = None


def _with_stored_outputs(rt: Runtime, detail: Mapping[str, Any]) -> dict[str, Any] | str:
    """A build's report that names its stored result instead of carrying it: the report
    with the result read from there. Only the attempt's own outputs object is read
    (codebuild_executor.outputs_key): a report naming any other key is refused before
    anything is read (its token is checked by the service afterwards, as for any)."""
    key = detail.get(OUTPUTS_OBJECT)
    epoch, attempt = detail.get("epoch"), detail.get("attempt")
    own = (
        isinstance(key, str)
        and isinstance(epoch, int)
        and isinstance(attempt, int)
        and cb.is_outputs_key(
            key,
            env_name=rt.settings.ENV,
            machine_id=str(detail.get("machine_id")),
            name=cb.attempt_name(epoch, attempt, str(detail.get("task"))),
        )
    )
    if not own:
        logger.warning(
            "refused Task Finished of machine %s: %s is not its attempt's outputs object",
            detail.get("machine_id"),
            OUTPUTS_OBJECT,
        )
        METRICS.count(f"events_{Outcome.REFUSED.value}")
        return Outcome.REFUSED.value
    kept = {k: v for k, v in detail.items() if k in ("machine_id", "epoch", "task", "attempt")}
    kept["report_token"] = detail.get("report_token", "")
    return kept | _stored_outputs(rt, str(key))


def _stored_outputs(rt: Runtime, key: str) -> dict[str, Any]:
    """The completion of a build whose result was too big for its report, from the
    object it stored at ``key`` in the state bucket.

    The build did its job whatever happens here, so an unreadable outputs object leaves
    the task succeeded without outputs, and says so. An object too large to be a task
    output is not even read: the attempt fails with ``OutputTooLarge`` (the engine
    measures the outputs that are read exactly)."""
    output = _read_outputs(rt, key)
    if isinstance(output, _Oversized):
        return {
            "status": "failed",
            "error": f"the outputs of the build are {output.size} bytes as stored; one "
            f"task's output is limited to {TASK_OUTPUT_MAX_BYTES} bytes (32 KiB) as compact "
            "JSON: output less from the module (or store it elsewhere and output where)",
            "error_type": OUTPUT_TOO_LARGE,
        }
    if output and output.error_type:
        return {
            "status": "failed",
            "output": output.outputs,
            "error": output.error or f"the build stored {output.error_type}",
            "error_type": output.error_type,
        }
    return {
        "status": "succeeded",
        "output": output.outputs if output else None,
        "redacted_outputs": output.redacted_outputs if output else [],
    }


@dataclass(frozen=True)
class _Oversized:
    size: int


def _read_outputs(rt: Runtime, key: str) -> StoredOutputs | _Oversized | None:
    bucket = rt.settings.STATE_BUCKET
    s3 = rt.s3
    try:
        stored = s3.get_object(Bucket=bucket, Key=key)
        if stored["ContentLength"] > STORED_OUTPUTS_READ_MAX_BYTES:
            stored["Body"].close()
            return _Oversized(stored["ContentLength"])
        body = stored["Body"].read()
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        logger.warning("a build reported outputs at s3://%s/%s, which are not there", bucket, key)
        return None
    try:
        return StoredOutputs.model_validate_json(body)
    except ValidationError:
        # Not what this buildspec stores: nothing of it is kept.
        logger.warning("the outputs at s3://%s/%s are not the buildspec's; ignored", bucket, key)
        return None


# ---- the task runner's on-failure destination ---------------------------------------


def _function_name(name_or_arn: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME`` -> ``NAME``."""
    if ":function:" in name_or_arn:
        return name_or_arn.split(":function:", 1)[1].split(":", 1)[0]
    return name_or_arn


def task_runner_failure(rt: Runtime, detail: Mapping[str, Any]) -> str:
    context = detail.get("requestContext") or {}
    function = _function_name(str(context.get("functionArn", "")))
    if function != _function_name(rt.settings.TASK_RUNNER):
        return _ignored(f"invocation failure of {function!r}, not the task runner")
    payload = detail.get("requestPayload")
    if not isinstance(payload, Mapping):
        return _ignored("task runner failure without its request payload")
    response = detail.get("responsePayload")
    response = response if isinstance(response, Mapping) else {}
    kind = response.get("errorType") or (detail.get("responseContext") or {}).get(
        "functionError", "error"
    )
    message = response.get("errorMessage") or "no message"
    condition = context.get("condition", "failed")
    report = {
        "machine_id": payload.get("machine_id"),
        "epoch": payload.get("epoch"),
        "task": payload.get("task"),
        "attempt": payload.get("attempt"),
        "status": "failed",
        "error": f"the task runner failed ({condition}): {kind}: {message}",
        "error_type": str(kind),
        # The invocation's own: a failure only the attempt's invocation could have had.
        "report_token": payload.get("report_token"),
    }
    return rt.service.handle_bus_event(EVENT_SOURCE, "Task Finished", report).value
