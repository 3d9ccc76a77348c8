"""The example executor plugin end to end: linted with its own config model and rule,
run by a real `statewright serve`, run through the AWS dispatcher under moto; and a
spec naming an executor with no implementation in the mode served is refused when the
specs load (serve exits 2, the dispatcher's catalog and the CDK app's check refuse it),
not when a task starts."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import boto3
import pytest
from statewright.errors import ConfigurationError
from statewright.executors.registry import registry
from statewright.spec.lint import lint_file, lint_text

from tests.integration.aws.deployment import REGION, Deployment
from tests.integration.local.server import STATEWRIGHT, Server, in_state
from tests.integration.plugins.conftest import SPECS, SPECS_CLOUD_ONLY, SPECS_LOCAL_ONLY

SPEC = SPECS / "announce.yml"


def test_without_the_plugin_a_queue_task_is_an_unknown_executor() -> None:
    registry.cache_clear()
    result = lint_file(SPEC)
    assert [f.rule for f in result.errors] == ["executor"]
    done = subprocess.run(
        [STATEWRIGHT, "validate", str(SPEC)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "[executor]" in done.stdout


@pytest.mark.usefixtures("installed")
def test_the_linter_checks_a_plugin_task_with_the_plugin_model() -> None:
    assert lint_file(SPEC).findings == []
    bad = SPEC.read_text().replace("queue: environments", "queue: two words")
    findings = lint_text(bad, path="announce.yml").errors
    assert [f.rule for f in findings] == ["queue-config"]
    assert findings[0].line == bad.splitlines().index("      queue: two words") + 1
    broken = SPEC.read_text().replace('"${{ machine.id }}"', '"${{ machine.name }}"')
    assert [f.rule for f in lint_text(broken, path="announce.yml").errors] == ["reference"]


def test_validate_finds_the_installed_plugin(plugin_env: dict[str, str]) -> None:
    done = subprocess.run(
        [STATEWRIGHT, "validate", str(SPEC)],
        capture_output=True,
        text=True,
        env=plugin_env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_serve_runs_the_plugin_task(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    with Server(tmp_path, specs=[SPECS], env=plugin_env) as server:
        created = server.request(
            "POST", "/machines", {"spec": "announce", "id": "env-7", "metadata": {"owner": "ana"}}
        )
        assert created.status == 201, created
        assert server.request("POST", "/machines/env-7/events", {"event": "LAUNCH"}).status == 202
        machine = server.wait_for("env-7", in_state("UP"))
        assert machine is not None
        task = machine["tasks"]["announce"]
        assert task["executor"] == "queue" and task["status"] == "succeeded"
        assert task["output"]["queue"] == "environments"
    lines = (server.data_dir / "queues" / "environments.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"machine": "env-7", "state": "ANNOUNCE", "owner": "ana", "note": "ana launched env-7"}
    ]


def test_serve_refuses_a_spec_whose_executor_has_no_local_implementation(
    tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [
            STATEWRIGHT,
            "serve",
            "--port",
            "0",
            "--specs",
            str(SPECS_CLOUD_ONLY),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        env=plugin_env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # it never listened
    assert "spec cloud: executor 'cloud-only' has no local implementation" in done.stderr


@pytest.mark.usefixtures("installed")
def test_the_dispatcher_runs_the_plugin_task(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment
    monkeypatch.setenv("STATEWRIGHT_SPECS_DIR", str(SPECS))
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="environments")["QueueUrl"]

    status, _ = dep.api(
        "POST", "/machines", {"spec": "announce", "id": "env-7", "metadata": {"owner": "ana"}}
    )
    assert status == 201
    status, machine = dep.api("POST", "/machines/env-7/events", {"event": "LAUNCH"})
    assert status == 202, machine
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [
        {"machine": "env-7", "state": "ANNOUNCE", "owner": "ana", "note": "ana launched env-7"}
    ]
    # The executor reported on the bus; EventBridge brings it to the dispatcher.
    finished = dep.dispatched(dep.published())
    assert [e["detail-type"] for e in finished] == ["Task Finished"]
    # With the attempt's report token (invocation.finished() put it in); without it the
    # report would be refused.
    unsigned = copy.deepcopy(finished[0])
    del unsigned["detail"]["report_token"]
    assert dep.deliver(unsigned) == "refused"
    assert [dep.deliver(e) for e in finished] == ["applied"]
    nxt = dep.dispatched(dep.published())
    assert [dep.deliver(e) for e in nxt] == ["applied"]
    status, machine = dep.get("env-7")
    assert machine["state"] == "UP"
    task = machine["tasks"]["announce"]
    assert task["status"] == "succeeded"
    assert task["output"] == {"queue": "environments", "message_id": messages[0]["MessageId"]}


@pytest.mark.usefixtures("installed")
def test_aws_refuses_a_spec_whose_executor_has_no_aws_implementation() -> None:
    from statewright.aws.wiring import bundled_specs

    from infra.specs_check import SpecsError, check_specs

    with pytest.raises(ConfigurationError) as refused:
        bundled_specs(SPECS_LOCAL_ONLY)
    assert "spec desk: executor 'desk-only' has no aws implementation" in str(refused.value)
    # The CDK app checks the bundled specs the same way before it synthesizes.
    with pytest.raises(SpecsError) as synth:
        check_specs(SPECS_LOCAL_ONLY)
    assert "spec desk: executor 'desk-only' has no aws implementation" in str(synth.value)
    check_specs(SPECS)  # the example plugin has both implementations
