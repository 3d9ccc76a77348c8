"""Powertools Logger, Tracer and Metrics for every Statewright function: JSON logs with
the invocation's request id, a trace when tracing is on, and the service's counters as
CloudWatch metrics (namespace ``Statewright``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import Metrics, MetricUnit

SERVICE_NAME = "statewright"
NAMESPACE = "Statewright"

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE_NAME)


class PowertoolsMetrics:
    """The service's MetricsSink on Powertools Metrics (CloudWatch EMF)."""

    def __init__(self, sink: Metrics) -> None:
        self._sink = sink

    def count(self, name: str, value: int = 1) -> None:
        self._sink.add_metric(name=name, unit=MetricUnit.Count, value=value)


METRICS = PowertoolsMetrics(metrics)


@functools.cache
def _setup_logging() -> None:
    # The service logs through the standard library; give those loggers Powertools'
    # JSON format and level.
    copy_config_to_registered_loggers(source_logger=logger, include={"statewright"})


def _tracing_enabled() -> bool:
    """Powertools' own rule (not in Lambda, or POWERTOOLS_TRACE_DISABLED, or SAM local:
    disabled), checked before importing the X-Ray SDK, which costs a fifth of a second."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("AWS_SAM_LOCAL"):
        return False
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() not in ("1", "true")


@functools.cache
def _tracer() -> Any:
    """Powertools' Tracer when tracing is on, else None (created on first use)."""
    if not _tracing_enabled():
        return None
    from aws_lambda_powertools.tracing import Tracer

    return Tracer(service=SERVICE_NAME)


def run(fn: Callable[[Any, Any], Any], event: Any, context: Any, *, function: str) -> Any:
    """Call a handler body with Powertools' logging context, tracing and metrics."""
    _setup_logging()
    logger.append_keys(function=function, request_id=getattr(context, "aws_request_id", None))
    tracer = _tracer()
    # capture_response=False: Powertools would otherwise put every handler's answer
    # (machines with their metadata and task outputs) into X-Ray as trace metadata.
    call = fn
    if tracer is not None:
        call = tracer.capture_lambda_handler(fn, capture_response=False)
    try:
        return call(event, context)
    finally:
        if metrics.metric_set:  # an invocation that counted nothing publishes nothing
            metrics.flush_metrics()
