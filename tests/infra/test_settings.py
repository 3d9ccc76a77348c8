"""cdk.json's environments: what is accepted, and the messages for what is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from infra.app import repository_context
from infra.paths import REPO_ROOT
from infra.settings import CONTEXT_KEY, SettingsError, load_settings


def _environments() -> dict[str, Any]:
    environments: dict[str, Any] = json.loads(json.dumps(repository_context()[CONTEXT_KEY]))
    return environments


def _with(env: str, **changes: Any) -> dict[str, Any]:
    environments = _environments()
    environments[env].update(changes)
    return environments


def test_cdk_json_declares_dev_and_prod_with_every_setting() -> None:
    document = json.loads((REPO_ROOT / "cdk.json").read_text())
    assert document["app"] == ".venv/bin/python app.py"
    for env in ("dev", "prod"):
        settings = load_settings(_environments(), env)
        assert settings.task_function_prefix.startswith(f"statewright-{env}-")
        assert settings.terraform.version and len(settings.terraform.sha256) == 64
        assert settings.history_retention_days > 0
    assert load_settings(_environments(), "dev").removal_policy == "destroy"
    left_out = _environments()
    del left_out["dev"]["notices"]
    assert load_settings(left_out, "dev").notices.state_changed  # on unless turned off
    del left_out["dev"]["api"]
    assert load_settings(left_out, "dev").api.type == "rest"  # REST unless asked otherwise
    assert load_settings(_environments(), "prod").removal_policy == "retain"


def test_terraform_pin_is_the_published_release_checksum() -> None:
    # terraform_1.11.4_linux_amd64.zip, from releases.hashicorp.com's SHA256SUMS.
    for env in ("dev", "prod"):
        terraform = load_settings(_environments(), env).terraform
        assert terraform.version == "1.11.4"
        assert terraform.sha256 == (
            "1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc"
        )


@pytest.mark.parametrize(
    ("environments", "env", "message"),
    [
        (_environments(), "staging", r"'staging' is not declared .*declared: dev, prod"),
        (_environments(), "Dev_1", r"environment name 'Dev_1' is not accepted"),
        ({}, "dev", r"cdk.json has no 'statewright:environments' context"),
        (
            _with("dev", log_retention_days=10),
            "dev",
            r"log_retention_days: .*10 is not a CloudWatch",
        ),
        (
            _with("dev", removal_policy="snapshot"),
            "dev",
            r"removal_policy: .*'destroy' or 'retain'",
        ),
        (
            _with("dev", terraform_policy_statements=[{"Action": ["*"], "Resource": ["*"]}]),
            "dev",
            r"terraform_policy_statements\.0\.Action: .*'\*' alone would grant everything",
        ),
        (
            _with(
                "dev",
                terraform_managed_policy_arns=["arn:aws:iam::aws:policy/AdministratorAccess"],
            ),
            "dev",
            r"AdministratorAccess grants far more than Terraform needs",
        ),
        (
            _with("dev", task_function_prefix="statewright-dev-"),
            "dev",
            r"would let tasks invoke the control plane's own statewright-dev-dispatcher",
        ),
        (_with("prod", surprise=1), "prod", r"surprise: Extra inputs are not permitted"),
        (
            _with("dev", terraform={"version": "1.11", "sha256": "abc"}),
            "dev",
            r"terraform.version: .*terraform.sha256",
        ),
        (
            # Builds run for their task's timeout (StartBuild overrides the project's), so
            # a project timeout would be silently ignored: refused, with the way to do it.
            _with(
                "dev",
                terraform={**_environments()["dev"]["terraform"], "timeout_minutes": 60},
            ),
            "dev",
            r"terraform: .*timeout_minutes is not a setting: each Terraform build runs for "
            r"its task's timeout_seconds",
        ),
        (
            _with(
                "dev",
                terraform={**_environments()["dev"]["terraform"], "distribution": "tofu"},
            ),
            "dev",
            r"terraform.distribution: .*'tofu' is not accepted: use one of terraform, opentofu",
        ),
        (
            _with("dev", terraform={**_environments()["dev"]["terraform"], "version": "1.9.8"}),
            "dev",
            r"terraform: .*terraform 1.9.8 is too old: accepted are 1.10.0 and later, whose S3 "
            r"backend has use_lockfile",
        ),
        (
            _with(
                "dev",
                terraform={
                    **_environments()["dev"]["terraform"],
                    "distribution": "opentofu",
                    "version": "1.9.1",
                },
            ),
            "dev",
            r"opentofu 1.9.1 is too old: accepted are 1.10.0 and later",
        ),
        (
            _with("dev", terraform_module_buckets=["Modules_Bucket"]),
            "dev",
            r"terraform_module_buckets\.0: String should match pattern",
        ),
        (
            _with("dev", api_execution_logs="verbose"),
            "dev",
            r"api_execution_logs: Input should be 'off', 'errors' or 'info'",
        ),
        (
            _with("dev", api={"type": "websocket"}),
            "dev",
            r"api.type: .*'websocket' is not an API type; accepted: rest: .*; http: ",
        ),
        (
            _with("dev", api={"type": "http", "stage": "v2"}),
            "dev",
            r"api.stage: Extra inputs are not permitted",
        ),
        (
            _with("dev", api={"type": "http"}, api_execution_logs="errors"),
            "dev",
            r"api_execution_logs must be 'off' with api.type 'http': HTTP APIs have no "
            r"execution logs",
        ),
        (
            _with("dev", api={"type": "http"}, api_gateway_account_role=True),
            "dev",
            r"api_gateway_account_role is for a REST API's execution logs",
        ),
        (
            _with("dev", notices={"state_changed": "yes"}),
            "dev",
            r"notices.state_changed: Input should be a valid boolean",
        ),
        (
            _with("dev", notices={"deleted": False}),
            "dev",
            r"notices: .*'deleted' is not a notice; accepted: state_changed \(true or false\)",
        ),
        (
            _with("dev", notices=False),
            "dev",
            r"notices: .*notices must be an object of notice names; accepted: state_changed",
        ),
    ],
)
def test_bad_settings_are_refused_with_a_message(environments: Any, env: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environments, env)


def test_app_py_refuses_an_undeclared_environment_before_synthesizing() -> None:
    context = {**repository_context(), "env": "staging"}
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert "statewright: environment 'staging' is not declared" in result.stderr
    assert "Traceback" not in result.stderr
