"""CodeBuild's idempotency-token rule, which moto does not enforce, on a boto3 client.

AWS: "The token is included in the StartBuild request and is valid for 5 minutes. If you
repeat the StartBuild request with the same token, but change a parameter, CodeBuild
returns a parameter mismatch error." With the rule installed, a repeated StartBuild
with the same token and parameters within the window answers the build it started, and
one with other parameters fails with ``InvalidInputException`` — as on AWS."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

WINDOW_SECONDS = 300.0


@dataclass
class _Started:
    parameters: str
    at: float
    answer: dict[str, Any]


@dataclass
class CodeBuildTokenRule:
    """Install with :meth:`install` on a CodeBuild client; ``clock`` gives seconds."""

    clock: Callable[[], float]
    started: dict[str, _Started] = field(default_factory=dict)
    mismatches: int = 0

    def install(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.codebuild.StartBuild", self._remember)
        events.register("before-call.codebuild.StartBuild", self._answer_repeat)
        events.register("after-call.codebuild.StartBuild", self._record)

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["statewright_start_build"] = copy.deepcopy(params)

    @staticmethod
    def _key(context: dict[str, Any]) -> tuple[str | None, str]:
        params = dict(context["statewright_start_build"])
        token = params.pop("idempotencyToken", None)
        return token, json.dumps(params, sort_keys=True, default=str)

    def _answer_repeat(
        self, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        token, parameters = self._key(context)
        earlier = self.started.get(token) if token else None
        if earlier is None or self.clock() - earlier.at > WINDOW_SECONDS:
            return None  # a new build (moto starts it)
        if earlier.parameters == parameters:
            return _response(200), copy.deepcopy(earlier.answer)
        self.mismatches += 1
        error = {
            "Code": "InvalidInputException",
            "Message": "Parameter mismatch: the idempotency token was used with other parameters",
        }
        return _response(400), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def _record(
        self, http_response: AWSResponse, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        token, parameters = self._key(context)
        if not token or http_response.status_code != 200:
            return
        earlier = self.started.get(token)
        if earlier is None or self.clock() - earlier.at > WINDOW_SECONDS:
            self.started[token] = _Started(parameters, self.clock(), copy.deepcopy(parsed))


def _response(status: int) -> AWSResponse:
    return AWSResponse(url="https://codebuild.local/", status_code=status, headers={}, raw=None)
