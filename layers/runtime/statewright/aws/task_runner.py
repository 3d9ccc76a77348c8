"""The task runner: one attempt of one ``lambda`` task (the payload is the
TaskInvocation the LambdaExecutor queued).

It invokes the user's function synchronously with the event of
statewright.executors.function_event (the same as locally) and reports
``Task Finished`` to the bus: the function's JSON result as the output, or its error
type and message, with the attempt's report token from the payload (never shown to the
user's function). If the runner itself dies, Lambda's on-failure destination puts the
failed invocation on the bus and the dispatcher fails the attempt."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from statewright.aws.eventbridge_bus import EventBridgeBus
from statewright.aws.settings import TaskRunnerSettings, load_task_runner_settings
from statewright.executors.builtin import LambdaConfig
from statewright.executors.function_event import function_event
from statewright.limits import TASK_OUTPUT_MAX_BYTES, json_size
from statewright.model import OUTPUT_TOO_LARGE, BusEvent, TaskFinishedDetail, TaskInvocation
from statewright.ports import Bus

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

# One attempt only: a retried synchronous Invoke could run the user's function twice
# behind the engine's back (its retry policy decides about second attempts). The read
# timeout outlasts Lambda's 15-minute maximum.
_INVOKE_CONFIG = Config(retries={"total_max_attempts": 1}, read_timeout=960, connect_timeout=5)


@dataclass
class TaskRunner:
    lambda_client: LambdaClient
    bus: Bus

    def run(self, payload: Mapping[str, Any]) -> TaskFinishedDetail:
        """Run the attempt at once: a retry's backoff was waited for by a timer before
        the attempt was queued (docs/runtime.md, "Timers")."""
        invocation = TaskInvocation.model_validate(payload)
        config = LambdaConfig.model_validate(invocation.task_spec.config)
        detail = self._invoke(invocation, config)
        self.bus.publish([BusEvent(detail_type="Task Finished", detail=self._bounded(detail))])
        return detail

    def _invoke(self, invocation: TaskInvocation, config: LambdaConfig) -> TaskFinishedDetail:
        finished = invocation.finished
        try:
            response = self.lambda_client.invoke(
                FunctionName=config.name,
                InvocationType="RequestResponse",
                Payload=json.dumps(function_event(invocation, config)).encode(),
            )
        except ClientError as exc:
            # Not invoked at all: missing function, denied, throttled.
            error = exc.response.get("Error", {})
            code = error.get("Code", "Error")
            return finished(
                "failed",
                error=f"could not invoke {config.name}: {code}: {error.get('Message', str(exc))}",
                error_type=code,
            )
        body = response["Payload"].read()
        if "FunctionError" in response:
            kind, message = _function_error(body)
            return finished("failed", error=f"{kind}: {message}", error_type=kind)
        try:
            output = json.loads(body) if body else None
        except ValueError:
            return finished("failed", error=f"{config.name} returned something not JSON")
        return finished("succeeded", output=output)

    @staticmethod
    def _bounded(detail: TaskFinishedDetail) -> dict[str, Any]:
        """The report as published. An output over the task-output limit is refused
        here already (the engine would refuse it too), so the event stays small."""
        data = detail.model_dump(mode="json")
        size = json_size(data["output"])
        if size > TASK_OUTPUT_MAX_BYTES:
            data.update(
                status="failed",
                output=None,
                error=f"the output of task {detail.task} is {size} bytes as compact JSON and "
                f"one task's output is limited to {TASK_OUTPUT_MAX_BYTES} bytes (32 KiB); "
                "return less, or store it elsewhere (S3, say) and return where",
                error_type=OUTPUT_TOO_LARGE,
            )
        return data


def _function_error(body: bytes) -> tuple[str, str]:
    """(error type, message) from Lambda's error payload."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        kind = payload.get("errorType") or "Error"
        message = payload.get("errorMessage") or "no message"
        return str(kind), str(message)
    return "Error", body[:500].decode(errors="replace")


@functools.lru_cache(maxsize=4)
def _runner(settings: TaskRunnerSettings) -> TaskRunner:
    session = boto3.session.Session()
    return TaskRunner(
        lambda_client=session.client("lambda", config=_INVOKE_CONFIG),
        bus=EventBridgeBus(session.client("events"), settings.BUS),
    )


def task_runner(settings: TaskRunnerSettings | None = None) -> TaskRunner:
    return _runner(settings if settings is not None else load_task_runner_settings())
