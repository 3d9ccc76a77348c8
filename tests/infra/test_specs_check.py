"""Which shipped specs a deployment can run: checked at synth from the specs and cdk.json,
reported as a warning naming the spec, the task and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.app import build_stack, repository_context, spec_warnings
from infra.paths import REPO_ROOT, SourcePaths
from infra.settings import CONTEXT_KEY, EnvironmentSettings, load_settings
from infra.specs_check import unrunnable_tasks
from tests.infra.conftest import Synthesized

HEADER = (
    "version: 1.0\nevents: [GO]\nstates:\n  INIT: {on: {GO: [{action: advance, state: WORK}]}}\n"
)


def _settings(env: str = "dev", **changes: Any) -> EnvironmentSettings:
    environments = json.loads(json.dumps(repository_context()[CONTEXT_KEY]))
    environments[env].update(changes)
    return load_settings(environments, env)


def _spec(folder: Path, name: str, task: str) -> Path:
    """A spec whose WORK state runs one task, written as ``task`` (a YAML flow mapping)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yml"
    path.write_text(
        HEADER
        + "  WORK: {tasks: [t], on: {NEXT: [{action: advance, state: DONE}]}}\n"
        + "  DONE: {terminal: true}\n"
        + f"tasks:\n  t: {task}\n"
    )
    return path


def _reasons(specs: Path, settings: EnvironmentSettings) -> list[str]:
    return [str(problem) for problem in unrunnable_tasks(specs, settings)]


def test_the_specs_shipped_with_the_default_deployment_can_run_there() -> None:
    # Lambda tasks name functions under dev's prefix and the Terraform modules ship inside
    # specs/, so `make deploy` (dev) runs every shipped spec.
    assert _reasons(REPO_ROOT / "specs", _settings("dev")) == []


def test_another_environment_is_told_which_shipped_tasks_it_cannot_run() -> None:
    # Every environment ships the same specs/; prod's functions have prod's prefix, so the
    # samples' dev functions are out of its reach, and the synth says so task by task.
    reasons = _reasons(REPO_ROOT / "specs", _settings("prod"))
    assert reasons, "prod would run dev's sample functions"
    for reason in reasons:
        assert "Lambda function 'statewright-dev-task-" in reason
        assert "outside task_function_prefix 'statewright-prod-task-'" in reason
    assert "spec preview-env, task db-setup: " in "\n".join(reasons)


def test_a_function_outside_the_task_prefix_is_named_with_the_reason(tmp_path: Path) -> None:
    _spec(tmp_path, "billing", "{executor: lambda, config: {name: charge-card}}")
    assert _reasons(tmp_path, _settings()) == [
        "spec billing, task t: Lambda function 'charge-card' is outside "
        "task_function_prefix 'statewright-dev-task-', so the task runner may not invoke "
        "it; name the function (and the spec) with the prefix, or change "
        "task_function_prefix in cdk.json"
    ]
    _spec(
        tmp_path,
        "billing",
        "{executor: lambda, config: {name: 'statewright-dev-task-charge:live'}}",
    )
    assert _reasons(tmp_path, _settings()) == []


def test_a_function_arn_of_another_account_or_region(tmp_path: Path) -> None:
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:statewright-dev-task-charge"
    _spec(tmp_path, "billing", f"{{executor: lambda, config: {{name: '{arn}'}}}}")
    pinned = _settings(account="111122223333", region="eu-west-1")
    assert _reasons(tmp_path, pinned) == []
    (elsewhere,) = _reasons(tmp_path, _settings(account="444455556666", region="eu-west-1"))
    assert "is in account 111122223333, but this deployment is pinned to 444455556666" in elsewhere
    (unpinned,) = _reasons(tmp_path, _settings())
    assert "names account 111122223333, but cdk.json does not pin" in unpinned


def test_an_s3_module_needs_a_bucket_the_runner_may_read(tmp_path: Path) -> None:
    task = (
        "{executor: terraform, config: {action: apply, "
        "source: {type: s3, bucket: acme-modules, key: network/}}}"
    )
    _spec(tmp_path, "network", task)
    (reason,) = _reasons(tmp_path, _settings())
    assert reason == (
        "spec network, task t: its Terraform module is in bucket 'acme-modules', which the "
        "CodeBuild role may not read; add the bucket to terraform_module_buckets in "
        "cdk.json (or ship the module inside specs/ as a local source)"
    )
    assert _reasons(tmp_path, _settings(terraform_module_buckets=["acme-modules"])) == []
    statement = {"Action": ["s3:Get*"], "Resource": ["arn:aws:s3:::acme-modules/network/*"]}
    assert _reasons(tmp_path, _settings(terraform_policy_statements=[statement])) == []
    other = {"Action": ["s3:Get*"], "Resource": ["arn:aws:s3:::acme-modules/dns/*"]}
    assert len(_reasons(tmp_path, _settings(terraform_policy_statements=[other]))) == 1


def test_a_local_module_must_ship_inside_the_specs_folder(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "modules" / "net").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    local = (
        "{{executor: terraform, config: {{action: apply, source: {{type: local, location: {}}}}}}}"
    )
    _spec(specs, "inside", local.format("modules/net"))
    _spec(specs, "escapes", local.format("../outside"))
    _spec(specs, "absolute", local.format(str(tmp_path / "outside")))
    reasons = _reasons(specs, _settings())
    assert len(reasons) == 2
    assert reasons[0].startswith("spec absolute, task t: its local Terraform source")
    assert "is an absolute path of this machine" in reasons[0]
    assert reasons[1] == (
        "spec escapes, task t: its local Terraform source '../outside' is outside specs/, "
        "the only folder the deployment ships to CodeBuild; move the module inside it or "
        "use an s3 source"
    )


def test_the_synth_warns_about_each_task_it_cannot_run(tmp_path: Path) -> None:
    # What app.py prints before synthesizing (make synth shows it), one line per task.
    specs = tmp_path / "specs"
    _spec(specs, "billing", "{executor: lambda, config: {name: charge-card}}")

    class Paths(SourcePaths):
        @property
        def specs(self) -> Path:
            return specs

    app = cdk.App(outdir=str(tmp_path / "out"), context=repository_context())
    build_stack(app, "dev", paths=Paths())
    assert spec_warnings(app) == [
        "warning: statewright-dev: spec billing, task t: Lambda function 'charge-card' is "
        "outside task_function_prefix 'statewright-dev-task-', so the task runner may not "
        "invoke it; name the function (and the spec) with the prefix, or change "
        "task_function_prefix in cdk.json"
    ]


def test_the_synth_of_each_environment_reports_its_problems(synth: Synthesized) -> None:
    problems = unrunnable_tasks(REPO_ROOT / "specs", synth.settings)
    expected = [f"warning: statewright-{synth.env}: {problem}" for problem in problems]
    assert spec_warnings(synth.app) == expected
    assert (expected == []) is (synth.env == "dev")
