"""The ``lambda`` executor in AWS: an asynchronous Invoke of our task-runner function,
which calls the user's function synchronously and reports ``Task Finished`` to the bus
(functions/task_runner/handler.py).

``cancel`` does nothing: a Lambda invocation cannot be stopped, and it need not be — its
late ``Task Finished`` carries the old epoch, which the service ignores."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from statewright.errors import ConfigurationError, StartDeferred
from statewright.model import TaskInvocation

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

# Errors no retry can cure: the attempt fails with the reason. Anything else (throttling
# past the SDK's retries, a service error, a network fault) defers the start: the machine
# keeps the task pending and the reconciler starts it again.
PERMANENT_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "InvalidParameterValueException",
        "RequestTooLargeException",
        "KMSAccessDeniedException",
    }
)


class LambdaExecutor:
    name = "lambda"

    def __init__(self, client: LambdaClient, task_runner: str) -> None:
        self._client = client
        self.task_runner = task_runner

    def start(self, invocation: TaskInvocation) -> str:
        """Queue the attempt with Lambda (InvocationType Event); the run id is Lambda's
        request id, which the task runner's logs carry."""
        try:
            response = self._client.invoke(
                FunctionName=self.task_runner,
                InvocationType="Event",
                Payload=invocation.model_dump_json().encode(),
            )
        except BotoCoreError as exc:
            raise StartDeferred(
                f"could not reach Lambda for task {invocation.task}: {exc}"
            ) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") not in PERMANENT_ERRORS:
                raise StartDeferred(
                    f"Lambda did not queue task {invocation.task}: {error.get('Code')}: "
                    f"{error.get('Message', '')}"
                ) from exc
            raise ConfigurationError(
                f"could not queue task {invocation.task} for the task runner "
                f"{self.task_runner}: {error.get('Code')}: {error.get('Message', '')} "
                "(check STATEWRIGHT_TASK_RUNNER and the dispatcher's permissions)"
            ) from exc
        return response["ResponseMetadata"]["RequestId"]

    def cancel(self, run_id: str) -> None:
        """Nothing to do: a late result is ignored by its epoch."""
