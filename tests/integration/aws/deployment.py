"""A Statewright deployment under moto: the table (the synthesized key schema), the bus
(with a queue that captures what the control plane publishes), the task runner and a
user's function, the CodeBuild project, the state bucket and the timers' schedule group
— and the three Lambda
handlers called in-process, with only the environment variables of docs/aws.md#configuration set.

moto runs no Lambda code and never finishes a CodeBuild build by itself, so the test
plays EventBridge and CodeBuild: it runs the task runner on the payload the dispatcher
queued, and feeds every completion back as the events AWS delivers."""

from __future__ import annotations

import importlib.util
import io
import json
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from statewright.aws import settings as settings_module
from statewright.aws import wiring
from statewright.aws.codebuild_executor import CodeBuildExecutor
from statewright.aws.dynamodb_store import DynamoStore
from statewright.aws.lambda_executor import LambdaExecutor
from statewright.model import TaskInvocation
from statewright.report_tokens import ReportedAttempt, report_token

from tests import aws_limits
from tests.integration.aws.tables import create_table

aws_limits.install()  # every AWS client of these tests is made as strict as AWS

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE = "statewright-test"
BUS = "statewright-test"
TASK_RUNNER = "statewright-test-taskrunner"
PROJECT = "statewright-test-terraform"
STATE_BUCKET = "statewright-test-state"
SCHEDULE_GROUP = "statewright-test"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/statewright-test-scheduler"
DISPATCHER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:statewright-test-dispatcher"
TIMER_DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:statewright-test-failed-fires"
USER_FUNCTIONS = ("statewright-dev-task-db-setup",)  # specs/preview-env.yml
# Routed to the dispatcher by the CDK app's rules (infra/rules.py).
DISPATCHED = {("statewright", "Machine Event"), ("statewright", "Task Finished")}


def load_handler(name: str) -> ModuleType:
    path = REPO / "functions" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"statewright_fn_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lambda_context(function: str) -> Any:
    return SimpleNamespace(
        aws_request_id=str(uuid.uuid4()),
        function_name=function,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}",
        memory_limit_in_mb=512,
        get_remaining_time_in_millis=lambda: 900_000,
    )


def eventbridge(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An event as EventBridge hands it to a Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def emitted(out: str) -> dict[str, float]:
    """Metric name -> total, from the CloudWatch EMF lines the functions printed."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Statewright"
        for metric in directive["Metrics"]:
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(document[metric["Name"]])
    return totals


@dataclass
class Build:
    """One StartBuild the CodeBuild executor made: its id and its environment."""

    invocation: TaskInvocation
    build_id: str
    environment: list[dict[str, str]]

    @property
    def variables(self) -> dict[str, str]:
        return {v["name"]: v["value"] for v in self.environment}

    def terraform_variables(self) -> Any:
        """The variables the executor stored for this build (never in its environment),
        read as the buildspec reads them: the item of the control plane's table, or the
        object in the state bucket when they were too big for an item."""
        if "STATEWRIGHT_VARIABLES_ITEM" in self.variables:
            key = {"pk": {"S": self.variables["STATEWRIGHT_VARIABLES_ITEM"]}}
            item = boto3.client("dynamodb", region_name=REGION).get_item(
                TableName=TABLE, Key={**key, "sk": {"S": "BUILDVARS"}}, ConsistentRead=True
            )["Item"]
            return json.loads(item["variables"]["S"])
        stored = boto3.client("s3", region_name=REGION).get_object(
            Bucket=STATE_BUCKET, Key=self.variables["STATEWRIGHT_VARIABLES_KEY"]
        )
        return json.loads(stored["Body"].read())

    def record_run(self, who: str, started: datetime) -> None:
        """What the buildspec's record_run writes before Terraform may take the state's
        lock: the state's run record item (statewright/aws/terraform_locks.py)."""
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": self.variables["STATEWRIGHT_RUN_ITEM"]},
                "sk": {"S": "BUILDRUN"},
                "build_id": {"S": self.build_id},
                "who": {"S": who},
                "started": {"S": started.isoformat()},
            },
        )

    def state_change(self, status: str) -> dict[str, Any]:
        """CodeBuild's own ``Build State Change`` (default bus, source aws.codebuild)."""
        project_env = [
            {"name": "STATEWRIGHT_STATE_BUCKET", "value": STATE_BUCKET, "type": "PLAINTEXT"}
        ]
        event = eventbridge(
            "aws.codebuild",
            "CodeBuild Build State Change",
            {
                "build-status": status,
                "project-name": PROJECT,
                "build-id": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{self.build_id}",
                "additional-information": {
                    "environment": {"environment-variables": project_env + self.environment},
                    "build-complete": status != "IN_PROGRESS",
                },
                "current-phase": "COMPLETED",
                "version": "1",
            },
        )
        event["resources"] = [event["detail"]["build-id"]]
        return event

    def report_of_stored(self, stored: Any, *, indent: int | None = None) -> dict[str, Any]:
        """The buildspec's report when its result is too big for an event: the result
        stored at the build's outputs key, which the report names instead."""
        key = self.variables["STATEWRIGHT_OUTPUTS_KEY"]
        body = json.dumps(stored, indent=indent).encode()
        boto3.client("s3", region_name=REGION).put_object(Bucket=STATE_BUCKET, Key=key, Body=body)
        report = self.report("succeeded")
        del report["detail"]["output"]
        report["detail"]["outputs_object"] = key
        return report

    def report(self, status: str, output: Any = None, error: str | None = None) -> dict[str, Any]:
        """The buildspec's own report (post_build: aws events put-events)."""
        v = self.variables
        detail: dict[str, Any] = {
            "machine_id": v["STATEWRIGHT_MACHINE_ID"],
            "epoch": int(v["STATEWRIGHT_EPOCH"]),
            "task": v["STATEWRIGHT_TASK"],
            "attempt": int(v["STATEWRIGHT_ATTEMPT"]),
            "status": status,
            "report_token": v["STATEWRIGHT_REPORT_TOKEN"],
        }
        if status == "succeeded":
            detail["output"] = output
        else:
            detail["error"] = error
        return eventbridge("statewright", "Task Finished", detail)


STAGE = "v1"  # the stage both APIs deploy (infra/api.py, infra/http_api.py)
API_TYPES = ("rest", "http")


def rest_api_event(
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    query: dict[str, str] | None,
    principal: str,
) -> dict[str, Any]:
    """A REST API's Lambda proxy event (API Gateway puts the SigV4 signer's ARN in
    ``identity.userArn``)."""
    sent = {"Content-Type": "application/json", **headers}
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": sent,
        "multiValueHeaders": {k: [v] for k, v in sent.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": ({k: [v] for k, v in query.items()} if query else None),
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "accountId": ACCOUNT,
            "identity": {"sourceIp": "127.0.0.1", "userArn": principal},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def http_api_event(
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    query: dict[str, str] | None,
    principal: str,
) -> dict[str, Any]:
    """An HTTP API's event, payload format 2.0, as its ``$default`` route hands it over
    on stage v1: headers in lower case, the stage in ``rawPath``, the SigV4 signer in
    ``requestContext.authorizer.iam``."""
    raw_path = f"/{STAGE}{path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": urllib.parse.urlencode(query or {}),
        "headers": {
            k.lower(): v for k, v in {"Content-Type": "application/json", **headers}.items()
        },
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "a1b2c3d4e5",
            "authorizer": {
                "iam": {
                    "accessKey": "AKIAEXAMPLE",
                    "accountId": ACCOUNT,
                    "callerId": "AIDAEXAMPLE",
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": principal,
                    "userId": "AIDAEXAMPLE",
                }
            },
            "domainName": f"a1b2c3d4e5.execute-api.{REGION}.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "statewright-tests",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": STAGE,
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def answer_headers(response: dict[str, Any]) -> dict[str, str]:
    """An answer's headers, by lower-case name, from either API's result format."""
    if "multiValueHeaders" in response:
        return {k.lower(): ",".join(v) for k, v in response["multiValueHeaders"].items()}
    return {k.lower(): v for k, v in (response.get("headers") or {}).items()}


@dataclass
class Deployment:
    dispatcher: ModuleType
    task_runner: ModuleType
    reconciler: ModuleType
    queue_url: str
    lambda_starts: list[TaskInvocation] = field(default_factory=list)
    builds: list[Build] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    # Which API Gateway API sends api()'s requests (the dispatcher's STATEWRIGHT_API_TYPE).
    api_type: str = "rest"

    def api(self, *request: Any, **parts: Any) -> tuple[int, Any]:
        """One API request through the dispatcher (``api_response``'s arguments): its
        status and JSON body."""
        response = self.api_response(*request, **parts)
        return response["statusCode"], json.loads(response["body"])

    def api_response(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        principal: str = f"arn:aws:iam::{ACCOUNT}:user/t",
    ) -> dict[str, Any]:
        """The dispatcher's whole answer to one request, signed by ``principal``, as this
        deployment's API (``api_type``) hands it over."""
        build = http_api_event if self.api_type == "http" else rest_api_event
        event = build(method, path, body, headers or {}, query, principal)
        return aws_limits.api_gateway_answer(
            self.dispatcher.handler, event, lambda_context("dispatcher")
        )

    def deliver(self, event: dict[str, Any]) -> str:
        """EventBridge invoking the dispatcher with one event."""
        result = self.dispatcher.handler(event, lambda_context("dispatcher"))
        return str(result["outcome"])

    def published(self) -> list[dict[str, Any]]:
        """Everything the control plane put on its bus since the last call."""
        sqs = boto3.client("sqs", region_name=REGION)
        events = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    @staticmethod
    def dispatched(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events the bus rules route to the dispatcher."""
        return [e for e in events if (e["source"], e["detail-type"]) in DISPATCHED]

    def run_task_runner(self, invocation: TaskInvocation) -> Any:
        """Lambda running the task runner on the payload the dispatcher queued."""
        payload = json.loads(invocation.model_dump_json())
        return self.task_runner.handler(payload, lambda_context(TASK_RUNNER))

    def get(self, machine_id: str) -> tuple[int, Any]:
        return self.api("GET", f"/machines/{machine_id}")

    def report_token(self, machine_id: str, epoch: int, task: str, attempt: int) -> str:
        """The report token of one attempt of the machine as it is stored now: what the
        attempt's own run was given (signed with the deployment's key, from the table)."""
        store = DynamoStore(boto3.client("dynamodb", region_name=REGION), TABLE)
        machine = store.get(machine_id)
        assert machine is not None, machine_id
        attempted = ReportedAttempt(machine_id, machine.created_at, epoch, task, attempt)
        return report_token(store.page_token_key(), attempted)

    def forged_tokens(self, report: dict[str, Any], foreign: str) -> list[object]:
        """What a forger could put in ``report`` (the detail of a real Task Finished)
        instead of its token: none, junk, the real one altered, ``foreign`` (another
        machine's real token), and real tokens of every other attempt identity."""
        own = str(report["report_token"])
        store = DynamoStore(boto3.client("dynamodb", region_name=REGION), TABLE)
        machine = store.get(report["machine_id"])
        assert machine is not None
        attempt = ReportedAttempt(
            machine.id, machine.created_at, report["epoch"], report["task"], report["attempt"]
        )
        key = store.page_token_key()
        assert report_token(key, attempt) == own  # the real report's token is the real one

        def token_of(**changed: Any) -> str:
            return report_token(key, attempt._replace(**changed))

        return [
            None,  # no token at all
            "",
            "0" * 64,
            own.upper(),
            own[:-1] + ("0" if own[-1] != "0" else "1"),  # one digit altered
            own[:32],
            foreign,
            token_of(attempt=attempt.attempt + 1),
            token_of(epoch=attempt.epoch - 1),
            token_of(task=attempt.task + "-other"),
            token_of(machine_id=attempt.machine_id + "-other"),
            token_of(incarnation="2020-01-01T00:00:00.000Z"),  # the same id, created before
            report_token(b"k" * 32, attempt),  # another deployment's key
            7,
            "\ud800",
        ]

    def task_finished(self, detail: dict[str, Any]) -> dict[str, Any]:
        """A hand-made ``Task Finished`` as the attempt's own run would send it: with the
        report token of the attempt it names."""
        token = self.report_token(
            detail["machine_id"], detail["epoch"], detail["task"], detail["attempt"]
        )
        return eventbridge("statewright", "Task Finished", {**detail, "report_token": token})


def use_api(dep: Deployment, monkeypatch: pytest.MonkeyPatch, api_type: str) -> Deployment:
    """The deployment with its dispatcher configured for ``api_type`` (as the CDK app
    sets STATEWRIGHT_API_TYPE from cdk.json's api.type) and its requests sent as that
    API sends them."""
    monkeypatch.setenv("STATEWRIGHT_API_TYPE", api_type)
    dep.api_type = api_type
    wiring._build.cache_clear()
    return dep


def deploy_specs(root: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> Path:
    """The specs folder the dispatcher ships with: ``files`` (path inside it -> text),
    specs and the modules of their ``local`` Terraform sources."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(root))
    return root


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in settings_module.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # AWS's limits where moto is lenient (tests/aws_limits.py).
    with mock_aws(config={"lambda": {"use_docker": False}}), aws_limits.strict_aws():
        yield


@pytest.fixture
def table_from_template(aws: None) -> str:
    """The control plane's table, with the key schema the CDK app synthesizes."""
    create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    return TABLE


def create_control_plane_resources(user_functions: Iterable[str] = USER_FUNCTIONS) -> None:
    """What a deployment holds besides the table, under moto: the task runner and the
    users' functions (echoing their input), the state bucket, the Terraform project and
    the control plane's bus."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="statewright-test", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    lam = boto3.client("lambda", region_name=REGION)
    for name in (TASK_RUNNER, *user_functions):
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": _zip("def handler(event, context):\n    return event\n")},
        )
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=STATE_BUCKET)
    boto3.client("codebuild", region_name=REGION).create_project(
        name=PROJECT,
        source={"type": "S3", "location": f"{STATE_BUCKET}/none.zip", "buildspec": "version: 0.2"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole=role,
    )
    boto3.client("events", region_name=REGION).create_event_bus(Name=BUS)
    boto3.client("scheduler", region_name=REGION).create_schedule_group(Name=SCHEDULE_GROUP)


@pytest.fixture
def deployment(table_from_template: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    create_control_plane_resources()
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="published")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="capture", EventBusName=BUS, EventPattern=json.dumps({"source": ["statewright"]})
    )
    events.put_targets(Rule="capture", EventBusName=BUS, Targets=[{"Id": "q", "Arn": queue_arn}])

    # Only the required variables (docs/aws.md#configuration); STATEWRIGHT_SPECS_DIR is
    # left to its default.
    monkeypatch.setenv("STATEWRIGHT_ENV", "test")
    monkeypatch.setenv("STATEWRIGHT_TABLE", TABLE)
    monkeypatch.setenv("STATEWRIGHT_BUS", BUS)
    monkeypatch.setenv("STATEWRIGHT_TASK_RUNNER", TASK_RUNNER)
    monkeypatch.setenv("STATEWRIGHT_TERRAFORM_PROJECT", PROJECT)
    monkeypatch.setenv("STATEWRIGHT_STATE_BUCKET", STATE_BUCKET)
    monkeypatch.setenv("STATEWRIGHT_SCHEDULE_GROUP", SCHEDULE_GROUP)
    monkeypatch.setenv("STATEWRIGHT_SCHEDULER_ROLE_ARN", SCHEDULER_ROLE_ARN)
    monkeypatch.setenv("STATEWRIGHT_DISPATCHER_ARN", DISPATCHER_ARN)
    monkeypatch.setenv("STATEWRIGHT_TIMER_DLQ_ARN", TIMER_DLQ_ARN)

    dep = Deployment(
        dispatcher=load_handler("dispatcher"),
        task_runner=load_handler("task_runner"),
        reconciler=load_handler("reconciler"),
        queue_url=queue_url,
    )

    # Observe (and pass through to moto) what the executors start and stop.
    lambda_start = LambdaExecutor.start
    build_start = CodeBuildExecutor.start
    build_cancel = CodeBuildExecutor.cancel

    def record_lambda(self: LambdaExecutor, invocation: TaskInvocation) -> str:
        dep.lambda_starts.append(invocation)
        return lambda_start(self, invocation)

    def record_build(self: CodeBuildExecutor, invocation: TaskInvocation) -> str:
        build_id = build_start(self, invocation)
        env = [dict(v) for v in self.environment(invocation)]
        dep.builds.append(Build(invocation, build_id, env))
        return build_id

    def record_stop(self: CodeBuildExecutor, run_id: str) -> None:
        dep.stopped.append(run_id)
        build_cancel(self, run_id)

    monkeypatch.setattr(LambdaExecutor, "start", record_lambda)
    monkeypatch.setattr(CodeBuildExecutor, "start", record_build)
    monkeypatch.setattr(CodeBuildExecutor, "cancel", record_stop)
    wiring._build.cache_clear()
    yield dep
    wiring._build.cache_clear()
