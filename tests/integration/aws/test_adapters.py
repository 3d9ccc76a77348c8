"""The EventBridge bus and the Lambda and CodeBuild executors against moto (and, where
moto cannot produce the answer — partial PutEvents failures — botocore's Stubber on a
real client, which checks every request against the API model)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from statewright import engine
from statewright.aws import build_variables, terraform_locks
from statewright.aws.codebuild_executor import CodeBuildExecutor
from statewright.aws.eventbridge_bus import EventBridgeBus, PublishError
from statewright.aws.lambda_executor import LambdaExecutor
from statewright.errors import ConfigurationError, StartDeferred
from statewright.executors.builtin import LocalSource, S3Source
from statewright.executors.terraform_run import source_digest
from statewright.model import BusEvent, TaskFinishedDetail, TaskInvocation
from statewright.report_tokens import ReportedAttempt, ReportTokens, report_token

from tests import fakes
from tests.integration.aws.codebuild_tokens import CodeBuildTokenRule
from tests.integration.aws.deployment import REGION
from tests.integration.aws.tables import create_table
from tests.unit.engine.helpers import make_spec


def recorder(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the client sends."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(json.loads(json.dumps(params, default=_text)))

    client.meta.events.register(f"provide-client-params.*.{operation}", record)
    return calls


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def event(n: int) -> BusEvent:
    return BusEvent(
        detail_type="Machine Event", detail={"machine_id": f"m-{n}", "event": "NEXT", "epoch": n}
    )


# ---- EventBridge --------------------------------------------------------------------


def test_events_are_sent_ten_a_call_and_arrive_intact(aws: None) -> None:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name="bus")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["statewright"]})
    )
    events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "q", "Arn": arn}])
    calls = recorder(events, "PutEvents")

    EventBridgeBus(events, "bus").publish([event(n) for n in range(23)])

    assert [len(c["Entries"]) for c in calls] == [10, 10, 3]
    assert {e["EventBusName"] for c in calls for e in c["Entries"]} == {"bus"}
    received = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        received += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(r["detail"]["epoch"] for r in received) == list(range(23))
    assert {(r["source"], r["detail-type"]) for r in received} == {("statewright", "Machine Event")}


def _put_events_answer(failed: list[int], size: int) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
        if i in failed
        else {"EventId": f"e{i}"}
        for i in range(size)
    ]
    return {"FailedEntryCount": len(failed), "Entries": entries}


def test_failed_entries_are_sent_again_and_only_they() -> None:
    client = boto3.client(
        "events", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    batch = [event(n) for n in range(3)]
    stub.add_response("put_events", _put_events_answer([1], 3))
    stub.add_response("put_events", _put_events_answer([], 1))
    calls = recorder(client, "PutEvents")
    with stub:
        EventBridgeBus(client, "bus", sleep=lambda _: None).publish(batch)
    stub.assert_no_pending_responses()
    assert [json.loads(e["Detail"])["epoch"] for e in calls[1]["Entries"]] == [1]


def test_entries_that_keep_failing_raise_a_clear_error() -> None:
    client = boto3.client(
        "events", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_response("put_events", _put_events_answer([0, 1], 2))
    stub.add_response("put_events", _put_events_answer([1], 2))
    stub.add_response("put_events", _put_events_answer([0], 1))
    with stub, pytest.raises(PublishError) as caught:
        EventBridgeBus(client, "bus", attempts=3, sleep=lambda _: None).publish(
            [event(0), event(1)]
        )
    message = str(caught.value)
    assert "bus bus did not accept 1 event(s)" in message
    assert "Machine Event for m-1: ThrottlingException slow down" in message


# ---- executors ----------------------------------------------------------------------


def invocation(
    task_spec: dict[str, Any], *, attempt: int = 1, epoch: int = 3, base_dir: str | None = None
) -> TaskInvocation:
    # Signed as the service signs every attempt it starts on AWS.
    return ReportTokens(lambda: REPORT_KEY).sign(
        fakes.invocation(
            task_spec=task_spec,
            machine_id="pr-1",
            spec="preview-env",
            spec_digest="sha256:x",
            task="infra",
            epoch=epoch,
            attempt=attempt,
            metadata={"owner": "ana", "replicas": 1},
            timeout_seconds=1800,
            base_dir=base_dir,
        )
    )


APPLY = {
    "executor": "terraform",
    "config": {
        "action": "apply",
        "source": {"type": "s3", "bucket": "modules", "key": "net/"},
        "variables": {"replicas": 3, "tags": {"team": "x"}},
    },
}


@pytest.fixture
def codebuild(aws: None) -> Any:
    client = boto3.client("codebuild", region_name=REGION)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="cb", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    client.create_project(
        name="tf",
        source={"type": "S3", "location": "b/none.zip", "buildspec": "version: 0.2"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "img",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole=role,
    )
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=STATE)
    create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    return client


STATE = "state-bucket"
TABLE = "statewright-dev"
REPORT_KEY = bytes(range(32))  # the deployment's key report tokens are signed with


def executor_for(codebuild: Any, bus_name: str = "b", table: str = TABLE) -> CodeBuildExecutor:
    return CodeBuildExecutor(
        codebuild,
        "tf",
        env_name="dev",
        bus_name=bus_name,
        s3=boto3.client("s3", region_name=REGION),
        state_bucket=STATE,
        dynamodb=boto3.client("dynamodb", region_name=REGION),
        table=table,
    )


def variables_item(key: str) -> dict[str, Any]:
    item: dict[str, Any] = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"pk": {"S": key}, "sk": {"S": "BUILDVARS"}}, ConsistentRead=True
    )["Item"]
    return item


def state_objects() -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=STATE)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_start_build_passes_the_attempt_as_statewright_variables(codebuild: Any) -> None:
    calls = recorder(codebuild, "StartBuild")
    executor = executor_for(codebuild, bus_name="statewright-dev")
    attempt = invocation(APPLY)
    build_id = executor.start(attempt)

    assert codebuild.batch_get_builds(ids=[build_id])["builds"][0]["id"] == build_id
    [call] = calls
    assert call["projectName"] == "tf"
    assert call["timeoutInMinutesOverride"] == 30
    env = {v["name"]: v["value"] for v in call["environmentVariablesOverride"]}
    assert {v["type"] for v in call["environmentVariablesOverride"]} == {"PLAINTEXT"}
    digest = source_digest(S3Source(type="s3", bucket="modules", key="net/"))
    assert env == {
        "STATEWRIGHT_MACHINE_ID": "pr-1",
        "STATEWRIGHT_EPOCH": "3",
        "STATEWRIGHT_TASK": "infra",
        "STATEWRIGHT_ATTEMPT": "1",
        "STATEWRIGHT_ACTION": "apply",
        "STATEWRIGHT_SOURCE_TYPE": "s3",
        "STATEWRIGHT_SOURCE_BUCKET": "modules",
        "STATEWRIGHT_SOURCE_KEY": "net/",
        "STATEWRIGHT_STATE_KEY": f"dev/pr-1/{digest}.tfstate",
        "STATEWRIGHT_OUTPUTS_KEY": f"dev/pr-1/{digest}.outputs/3-1-infra.json",
        "STATEWRIGHT_RUN_ITEM": terraform_locks.record_key(f"dev/pr-1/{digest}.tfstate"),
        "STATEWRIGHT_VARIABLES_ITEM": build_variables.item_key(attempt.start_key),
        "STATEWRIGHT_BUS": "statewright-dev",
        # Good for this attempt's report only (docs/security.md).
        "STATEWRIGHT_REPORT_TOKEN": report_token(
            REPORT_KEY, ReportedAttempt("pr-1", attempt.incarnation, 3, "infra", 1)
        ),
    }
    # The variables are not in the build's environment (anyone who may read the build
    # sees it): one JSON object in an item of the control plane's table, metadata then
    # the task's variables (later wins) then stack_id; no object in the state bucket.
    assert "ana" not in json.dumps(call)
    item = variables_item(env["STATEWRIGHT_VARIABLES_ITEM"])
    assert json.loads(item["variables"]["S"]) == {
        "owner": "ana",
        "replicas": 3,
        "tags": {"team": "x"},
        "stack_id": "pr-1",
    }
    # DynamoDB's TTL deletes it a day after the attempt's timeout.
    expires = int(item["expires_at"]["N"]) - time.time()
    assert 1800 + 86_400 - 60 < expires <= 1800 + 86_400
    assert state_objects() == []


def test_the_variables_item_is_written_once_per_attempt(codebuild: Any) -> None:
    """A repeated start finds the item and keeps it, so every build of one attempt reads
    the same variables; another attempt, or the same id created again, gets its own."""
    executor = executor_for(codebuild)
    first = invocation(APPLY)
    executor.start(first)
    changed = first.model_copy(update={"metadata": {"owner": "bo"}})
    executor.start(changed)
    key = build_variables.item_key(first.start_key)
    assert json.loads(variables_item(key)["variables"]["S"])["owner"] == "ana"
    again = first.model_copy(update={"incarnation": "2026-01-01T00:00:00Z", "metadata": {}})
    executor.start(again)
    other = build_variables.item_key(again.start_key)
    assert other != key and "owner" not in json.loads(variables_item(other)["variables"]["S"])


def test_variables_too_big_for_an_item_go_through_the_state_bucket(codebuild: Any) -> None:
    calls = recorder(codebuild, "StartBuild")
    big = {**APPLY, "config": {**APPLY["config"], "variables": {"blob": "x" * 400_000}}}
    attempt = invocation(big)
    executor_for(codebuild).start(attempt)
    [call] = calls
    env = {v["name"]: v["value"] for v in call["environmentVariablesOverride"]}
    assert "STATEWRIGHT_VARIABLES_ITEM" not in env
    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=STATE, Key=env["STATEWRIGHT_VARIABLES_KEY"]
    )
    assert json.loads(stored["Body"].read())["blob"] == "x" * 400_000
    assert "x" * 100 not in json.dumps(call)


def test_a_missing_table_fails_the_start_naming_it(codebuild: Any) -> None:
    with pytest.raises(ConfigurationError, match="table nowhere does not exist"):
        executor_for(codebuild, table="nowhere").start(invocation(APPLY))


def test_the_idempotency_token_is_one_per_attempt(codebuild: Any) -> None:
    calls = recorder(codebuild, "StartBuild")
    executor = executor_for(codebuild)
    first = executor.start(invocation(APPLY))
    again = executor.start(invocation(APPLY))  # the same attempt started again (a redelivery)
    executor.start(invocation(APPLY, attempt=2))
    executor.start(invocation(APPLY, epoch=4))
    tokens = [c["idempotencyToken"] for c in calls]
    assert tokens[0] == tokens[1] and len(set(tokens)) == 3
    # Each attempt's build gets a report token of its own, the same at every start.
    reports = [
        next(
            v["value"]
            for v in c["environmentVariablesOverride"]
            if v["name"] == "STATEWRIGHT_REPORT_TOKEN"
        )
        for c in calls
    ]
    assert reports[0] == reports[1] and len(set(reports)) == 3
    assert len(tokens[0]) == 32
    # A machine created again under the same id gets builds of its own.
    executor.start(invocation(APPLY).model_copy(update={"incarnation": "2026-01-01T00:00:00Z"}))
    assert calls[-1]["idempotencyToken"] not in tokens
    assert first and again


RETRIED = make_spec(
    "retried",
    {
        "events": ["GO"],
        "states": {
            "INIT": {"on": {"GO": [{"action": "advance", "state": "UP"}]}},
            "UP": {"terminal": True, "tasks": ["infra"]},
        },
        "tasks": {"infra": {**APPLY, "retry": {"attempts": 3, "backoff_seconds": 90}}},
    },
)


def _starts(decision: engine.Decision) -> list[TaskInvocation]:
    return [e.invocation for e in decision.effects if isinstance(e, engine.StartTask)]


def test_a_restart_within_five_minutes_gets_the_build_already_started(codebuild: Any) -> None:
    """Issue: the reconciler restarts a pending attempt (its start was recorded nowhere)
    with other parameters than the first start; CodeBuild answered the reused token
    with a parameter mismatch, which failed the task for good."""
    now = [0.0]
    rule = CodeBuildTokenRule(clock=lambda: now[0])
    rule.install(codebuild)
    executor = executor_for(codebuild)
    t0 = "2026-03-01T12:00:00.000Z"
    machine = engine.create(RETRIED, engine.Create("pr-1"), t0).machine
    assert machine is not None
    went = engine.decide(machine, RETRIED, engine.ExternalEvent("GO"), t0)
    assert went.machine is not None
    failed = engine.decide(
        went.machine.model_copy(update={"version": 2}),
        RETRIED,
        engine.TaskFinished(
            TaskFinishedDetail(
                machine_id="pr-1", epoch=2, task="infra", attempt=1, status="failed", error="x"
            )
        ),
        t0,
    )
    assert _starts(failed) == []
    [timer] = [e.timer for e in failed.effects if isinstance(e, engine.ArmTimer)]
    assert failed.machine is not None
    # The backoff's timer fires 90 s later and starts attempt 2.
    fired = engine.decide(failed.machine, RETRIED, engine.TimerFired(timer), timer.due)
    [second] = _starts(fired)
    assert second.attempt == 2
    build = executor.start(second)  # the follow-up write that records it is lost

    # Four minutes after the failure (past the reconciler's grace period), the
    # reconciler finds attempt 2 still pending and starts it again.
    later = "2026-03-01T12:04:00.000Z"
    now[0] = 240.0
    reconciled = engine.decide(
        failed.machine, RETRIED, engine.Reconcile(pending_grace_seconds=120), later
    )
    [restart] = _starts(reconciled)
    assert restart.attempt == 2
    assert executor.start(restart) == build
    assert rule.mismatches == 0
    assert len(codebuild.list_builds()["ids"]) == 1


def test_a_start_with_other_parameters_gets_a_build_not_a_mismatch(codebuild: Any) -> None:
    rule = CodeBuildTokenRule(clock=lambda: 0.0)
    rule.install(codebuild)
    executor = executor_for(codebuild)
    first = executor.start(invocation(APPLY))
    other = invocation(APPLY).model_copy(update={"timeout_seconds": 7200})
    assert executor.start(other) != first  # parameters changed: a build of its own
    assert rule.mismatches == 0


def test_the_token_rule_emulation_refuses_a_mismatch_like_aws(codebuild: Any) -> None:
    rule = CodeBuildTokenRule(clock=lambda: 0.0)
    rule.install(codebuild)
    executor = executor_for(codebuild)
    parameters = executor.parameters(invocation(APPLY))
    first = codebuild.start_build(idempotencyToken="t", **parameters)["build"]["id"]
    assert codebuild.start_build(idempotencyToken="t", **parameters)["build"]["id"] == first
    with pytest.raises(codebuild.exceptions.InvalidInputException):
        codebuild.start_build(
            idempotencyToken="t", **{**parameters, "timeoutInMinutesOverride": 99}
        )
    assert rule.mismatches == 1


def test_apply_and_destroy_of_one_source_share_a_state_and_other_sources_do_not() -> None:
    a = source_digest(S3Source(type="s3", bucket="b", key="k"))
    assert a == source_digest(S3Source(type="s3", bucket="b", key="k"))
    assert a != source_digest(S3Source(type="s3", bucket="b", key="k2"))
    assert a != source_digest(LocalSource(type="local", location="k"))


def test_timeouts_stay_within_codebuilds_bounds(codebuild: Any) -> None:
    calls = recorder(codebuild, "StartBuild")
    executor = executor_for(codebuild)
    short = invocation(APPLY).model_copy(update={"timeout_seconds": 30})
    long = invocation(APPLY).model_copy(update={"timeout_seconds": 10**6})
    retried = invocation({**APPLY, "retry": {"attempts": 3, "backoff_seconds": 45.5}}, attempt=3)
    later = retried.model_copy(update={"timeout_seconds": 600})
    for inv in (short, long, later):
        executor.start(inv)
    # A retried attempt's build starts after its backoff (a timer waited for it), so
    # its timeout is the task's alone: 600 s, 10 minutes.
    assert [c["timeoutInMinutesOverride"] for c in calls] == [5, 2160, 10]
    names = {v["name"] for v in calls[2]["environmentVariablesOverride"]}
    assert "STATEWRIGHT_NOT_BEFORE" not in names


def test_cancel_stops_the_build_and_a_finished_or_unknown_one_is_fine(codebuild: Any) -> None:
    executor = executor_for(codebuild)
    build_id = executor.start(invocation(APPLY))
    stops = recorder(codebuild, "StopBuild")
    executor.cancel(build_id)
    assert stops == [{"id": build_id}]
    executor.cancel("tf:00000000-0000-0000-0000-000000000000")  # gone: nothing to do


def test_a_local_module_travels_as_a_path_inside_the_specs_asset(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    executor = CodeBuildExecutor(  # type: ignore[arg-type]
        None, "tf", env_name="dev", bus_name="b", specs_dir=specs
    )
    local = {
        "executor": "terraform",
        "config": {"action": "destroy", "source": {"type": "local", "location": "modules/db"}},
    }
    env = {
        v["name"]: v["value"] for v in executor.environment(invocation(local, base_dir=str(specs)))
    }
    assert env["STATEWRIGHT_SOURCE_LOCATION"] == "modules/db"
    assert "STATEWRIGHT_SOURCE_BUCKET" not in env
    outside = {
        "executor": "terraform",
        "config": {"action": "apply", "source": {"type": "local", "location": "../terraform/x"}},
    }
    with pytest.raises(ConfigurationError, match="outside the specs folder"):
        executor.environment(invocation(outside, base_dir=str(specs)))


def test_a_lambda_task_is_queued_for_the_task_runner(aws: None) -> None:
    client = boto3.client("lambda", region_name=REGION)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="r", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(e, c):\n    return e\n")
    client.create_function(
        FunctionName="runner",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    calls = recorder(client, "Invoke")
    task = {"executor": "lambda", "config": {"name": "db-setup", "args": {"size": "s"}}}
    inv = invocation(task)
    executor = LambdaExecutor(client, "runner")
    run_id = executor.start(inv)
    assert run_id
    [call] = calls
    assert call["FunctionName"] == "runner" and call["InvocationType"] == "Event"
    assert TaskInvocation.model_validate_json(call["Payload"]) == inv
    executor.cancel(run_id)  # nothing to stop: a late result is stale by its epoch


def test_a_missing_task_runner_or_project_is_a_reason_not_a_crash(aws: None) -> None:
    client = boto3.client("lambda", region_name=REGION)
    stub = Stubber(client)  # moto without Docker answers for any function name
    stub.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found",
    )
    with stub, pytest.raises(ConfigurationError, match="no-such-runner: ResourceNotFoundException"):
        LambdaExecutor(client, "no-such-runner").start(
            invocation({"executor": "lambda", "config": {"name": "db-setup"}})
        )
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=STATE)
    builds = CodeBuildExecutor(
        boto3.client("codebuild", region_name=REGION),
        "no-such-project",
        env_name="dev",
        bus_name="b",
        s3=boto3.client("s3", region_name=REGION),
        state_bucket=STATE,
    )
    with pytest.raises(ConfigurationError, match="STATEWRIGHT_TERRAFORM_PROJECT"):
        builds.start(invocation(APPLY))


def test_a_throttled_start_is_deferred_so_the_task_stays_pending() -> None:
    client = boto3.client(
        "lambda", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_client_error(
        "invoke", service_error_code="TooManyRequestsException", http_status_code=429
    )
    with stub, pytest.raises(StartDeferred, match="TooManyRequestsException"):
        LambdaExecutor(client, "runner").start(
            invocation({"executor": "lambda", "config": {"name": "f"}})
        )
    builds = boto3.client(
        "codebuild", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(builds)
    stub.add_client_error("start_build", service_error_code="ThrottlingException")
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stored = Stubber(s3)
    stored.add_response("put_object", {})
    executor = CodeBuildExecutor(
        builds,
        "project",
        env_name="dev",
        bus_name="b",
        s3=s3,
        state_bucket=STATE,
    )
    with stub, stored, pytest.raises(StartDeferred, match="ThrottlingException"):
        executor.start(invocation(APPLY))
