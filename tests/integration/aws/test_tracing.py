"""X-Ray tracing in the Lambda functions: a trace per invocation, and never the handler's
answer (machines with their metadata, task outputs) as trace metadata — Powertools'
``capture_lambda_handler`` records it unless told not to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.tracing import Tracer
from statewright.aws import observability

from tests.integration.aws.deployment import lambda_context

SECRET = "hunter2-b7f1c0de"


class Subsegment:
    def __init__(self, name: str) -> None:
        self.name = name
        self.metadata: list[tuple[str, Any]] = []
        self.annotations: dict[str, Any] = {}

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata.append((key, value))

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        self.metadata.append(("exception", repr(exception)))


class RecordingProvider:
    """A tracing provider (what Powertools' Tracer takes instead of the X-Ray SDK's
    recorder) that keeps what would be sent to X-Ray."""

    def __init__(self) -> None:
        self.subsegments: list[Subsegment] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str = "", **_: Any) -> Iterator[Subsegment]:
        subsegment = Subsegment(name)
        self.subsegments.append(subsegment)
        yield subsegment

    def patch(self, modules: Any) -> None:
        return None

    def patch_all(self) -> None:
        return None


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProvider]:
    # What Lambda sets, so Powertools and our check both see tracing on.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "statewright-test-dispatcher")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_TRACER_CAPTURE_RESPONSE", raising=False)
    recording = RecordingProvider()
    Tracer._reset_config()
    # Tracer's configuration is shared by every instance: the one observability builds
    # takes this provider.
    Tracer(service=observability.SERVICE_NAME, provider=recording, auto_patch=False)
    observability._tracer.cache_clear()
    yield recording
    observability._tracer.cache_clear()
    Tracer._reset_config()


def test_handlers_are_traced_without_their_answers(provider: RecordingProvider) -> None:
    def handler(event: Any, context: Any) -> Any:
        return {"metadata": {"password": SECRET}, "output": {"url": SECRET}}

    answer = observability.run(handler, {}, lambda_context("dispatcher"), function="dispatcher")
    assert answer["metadata"]["password"] == SECRET
    [subsegment] = provider.subsegments
    assert subsegment.name == "## handler" and subsegment.annotations["ColdStart"] in (True, False)
    assert SECRET not in repr(subsegment.metadata)
