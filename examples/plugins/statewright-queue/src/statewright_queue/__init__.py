"""The ``queue`` executor: a task that sends its ``config.body`` to a queue.

A Statewright executor plugin is one ExecutorPlugin object, registered under the
``statewright.executors`` entry-point group (see pyproject.toml): the config model the
linter validates tasks with, the config fields that may hold references, and a factory
per mode. This one has both a local and an AWS implementation."""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from statewright.executors.registry import AwsContext, ExecutorPlugin, LocalContext
from statewright.local.runs import LocalExecutor, Run
from statewright.model import BusEvent
from statewright.ports import TaskInvocation

# SQS's queue name rule; locally it names the file.
QUEUE_NAME = r"^[A-Za-z0-9_-]{1,80}$"


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str = Field(pattern=QUEUE_NAME, description="the queue's name")
    body: dict[str, JsonValue] = Field(default_factory=dict, description="the message")


class LocalQueueExecutor(LocalExecutor):
    """Appends the message to ``<data dir>/queues/<queue>.jsonl`` (the run thread and
    the Task Finished report come from LocalExecutor)."""

    name = "queue"

    def __init__(self, context: LocalContext) -> None:
        super().__init__(bus=context.bus, logs_dir=context.logs_dir)
        self._folder = context.data_dir / "queues"
        self._write = threading.Lock()

    def execute(self, run: Run) -> Any:
        config = QueueConfig.model_validate(run.invocation.task_spec.config)
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{config.queue}.jsonl"
        with self._write, path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(config.body, separators=(",", ":")) + "\n")
            line = out.tell()
        return {"queue": config.queue, "line": line}


class SqsQueueExecutor:
    """Sends the message with SQS SendMessage, then reports ``Task Finished`` to the
    control plane's bus; the run id is SQS's message id."""

    name = "queue"

    def __init__(self, context: AwsContext) -> None:
        from statewright.aws.eventbridge_bus import EventBridgeBus

        self._sqs = context.client("sqs")
        self._bus = EventBridgeBus(context.client("events"), context.bus_name)

    def start(self, invocation: TaskInvocation) -> str:
        config = QueueConfig.model_validate(invocation.task_spec.config)
        url = self._sqs.get_queue_url(QueueName=config.queue)["QueueUrl"]
        body = json.dumps(config.body, separators=(",", ":"))
        message_id = str(self._sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"])
        # finished() puts in the attempt's identity and its report token, without which
        # the dispatcher refuses the report (docs/spec.md#executor-plugins).
        detail = invocation.finished(
            "succeeded", output={"queue": config.queue, "message_id": message_id}
        )
        self._bus.publish(
            [BusEvent(detail_type="Task Finished", detail=detail.model_dump(mode="json"))]
        )
        return message_id

    def cancel(self, run_id: str) -> None:
        """A sent message cannot be taken back; nothing to stop."""


PLUGIN = ExecutorPlugin(
    name="queue",
    config_model=QueueConfig,
    default_timeout_seconds=60,
    rule="queue-config",
    reference_fields=("body",),
    local=LocalQueueExecutor,
    aws=SqsQueueExecutor,
)
