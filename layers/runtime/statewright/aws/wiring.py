"""Composition for AWS: the store, bus, executors, timers, catalog and Service built from the
settings, once per process (per distinct arguments) — a Lambda's warm invocations reuse
them, a test that passes other settings gets its own."""

from __future__ import annotations

import functools
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

from statewright.aws.dynamodb_store import DynamoStore
from statewright.aws.eventbridge_bus import EventBridgeBus
from statewright.aws.scheduler_timers import SchedulerTimers
from statewright.catalog import SpecCatalog, lint_folders
from statewright.executors.registry import AwsContext, aws_executors, require_implementations
from statewright.notices import WithoutStateChanged
from statewright.ports import Bus
from statewright.report_tokens import ReportTokens
from statewright.service import MetricsSink, Service
from statewright.spec.models import Spec

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client

    from statewright.aws.settings import Settings

# Standard retry mode backs off on throttling; short connects keep a dying dependency
# from eating the whole Lambda timeout.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)


def bundled_specs(folder: Path) -> list[Spec]:
    """The bundled specs, linted. A spec whose executor has no AWS implementation is
    refused with them (the CDK app refuses to synthesize it in the first place)."""
    specs = lint_folders([folder])
    require_implementations(specs, "aws")
    return specs


class LazyClient:
    """A boto3 client built on first use. Building one loads its service model (tens of
    milliseconds each), so a cold start pays only for the clients its event needs."""

    def __init__(self, session: boto3.session.Session, service: str) -> None:
        self._session = session
        self._service = service
        self._client: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._client is None:
            with self._lock:  # a boto3 session must not build clients concurrently
                if self._client is None:
                    self._client = self._session.client(
                        self._service,  # type: ignore[call-overload]
                        config=_CLIENT_CONFIG,
                    )
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


def _lazy(session: boto3.session.Session, service: str) -> Any:
    return LazyClient(session, service)


@dataclass
class Runtime:
    """What a handler needs: the settings, the service and the clients it uses itself."""

    settings: Settings
    service: Service
    store: DynamoStore
    codebuild: CodeBuildClient
    session: boto3.session.Session
    report_tokens: ReportTokens
    _s3: S3Client | None = field(default=None, repr=False)
    _lambda: LambdaClient | None = field(default=None, repr=False)
    _api: Any = field(default=None, repr=False)

    @property
    def s3(self) -> S3Client:
        if self._s3 is None:
            self._s3 = _lazy(self.session, "s3")
        return self._s3

    @property
    def lambda_client(self) -> LambdaClient:
        """For the dispatcher's own follow-up invocations (a schedule's fan-out)."""
        if self._lambda is None:
            self._lambda = _lazy(self.session, "lambda")
        return self._lambda

    @property
    def api(self) -> Any:
        """The HTTP API's resolver for the deployment's API Gateway API (its payload
        format: STATEWRIGHT_API_TYPE), built on the first API request."""
        if self._api is None:
            from statewright.api import build_api

            self._api = build_api(self.service, api_type=self.settings.API_TYPE)
        return self._api


@functools.lru_cache(maxsize=8)
def _build(settings: Settings, handler_dir: Path | None, metrics: MetricsSink | None) -> Runtime:
    session = boto3.session.Session()
    specs_dir = settings.specs_dir(handler_dir)
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = _lazy(session, service)
        return clients[service]

    codebuild = client("codebuild")
    store = DynamoStore(
        client("dynamodb"),
        settings.TABLE,
        history_retention_days=settings.HISTORY_RETENTION_DAYS,
    )
    report_tokens = ReportTokens(store.page_tokens.key)
    executors = aws_executors(
        AwsContext(
            client=client,
            env_name=settings.ENV,
            bus_name=settings.BUS,
            settings=settings,
            specs_dir=specs_dir,
        )
    )
    bus: Bus = EventBridgeBus(client("events"), settings.BUS)
    if not settings.STATE_CHANGED_NOTICES:
        bus = WithoutStateChanged(bus)
    timers = SchedulerTimers(
        client("scheduler"),
        group=settings.SCHEDULE_GROUP,
        role_arn=settings.SCHEDULER_ROLE_ARN,
        target_arn=settings.DISPATCHER_ARN,
        dead_letter_arn=settings.TIMER_DLQ_ARN,
    )
    service = Service(
        store=store,
        timers=timers,
        bus=bus,
        executors=executors,
        # Linted on first need, not at cold start: events for existing machines need
        # only their pinned spec, which the store holds by digest.
        catalog=SpecCatalog(loader=functools.partial(bundled_specs, specs_dir)),
        metrics=metrics,
        access=settings.access_policy(),
        # Every Task Finished must carry its attempt's token: the bus is not ours alone.
        report_tokens=report_tokens,
    )
    return Runtime(
        settings=settings,
        service=service,
        store=store,
        codebuild=codebuild,
        session=session,
        report_tokens=report_tokens,
    )


def runtime(
    settings: Settings | None = None,
    *,
    handler_dir: Path | None = None,
    metrics: MetricsSink | None = None,
) -> Runtime:
    """The process's Runtime for these arguments (settings: from the environment)."""
    if settings is None:
        # pydantic-settings costs a tenth of a second to import: only when first needed.
        from statewright.aws.settings import load_settings

        settings = load_settings()
    sink = cast("Hashable | None", metrics)  # sinks are plain objects, hashed by identity
    return _build(settings, handler_dir, sink)
