"""The ``lambda`` executor in AWS: an asynchronous Invoke of our task-runner function,
which calls the user's function synchronously and reports ``Task Finished`` to the bus
(functions/task_runner/handler.py).

``cancel`` does nothing: a Lambda invocation cannot be stopped, and it need not be — its
late ``Task Finished`` carries the old epoch, which the service ignores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from statewright.ports import TaskInvocation

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class LambdaExecutor:
    name = "lambda"

    def __init__(self, client: LambdaClient, task_runner: str) -> None:
        self._client = client
        self.task_runner = task_runner

    def start(self, invocation: TaskInvocation) -> str:
        """Queue the attempt with Lambda (InvocationType Event); the run id is Lambda's
        request id, which the task runner's logs carry."""
        response = self._client.invoke(
            FunctionName=self.task_runner,
            InvocationType="Event",
            Payload=invocation.model_dump_json().encode(),
        )
        return response["ResponseMetadata"]["RequestId"]

    def cancel(self, run_id: str) -> None:
        """Nothing to do: a late result is ignored by its epoch."""
