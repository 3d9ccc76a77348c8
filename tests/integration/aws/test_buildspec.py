"""infra/buildspec/terraform.yml, tested as text (its invariants) and by running its
helper — the only part that touches user values — against a stand-in ``aws`` command
that serves S3 from a folder and answers put-events as EventBridge would (accepted,
refused, or failing)."""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from statewright.aws import build_variables, terraform_locks
from statewright.aws import codebuild_executor as cb
from statewright.aws.table_layout import PARTITION_KEY, SORT_KEY
from statewright.executors.terraform_run import terraform_outputs

BUILDSPEC = Path(__file__).resolve().parents[3] / "infra" / "buildspec" / "terraform.yml"
# Values that come from users (spec authors or callers): never on a command line.
USER_VARIABLES = (
    cb.MACHINE_ID,
    cb.TASK,
    cb.SOURCE_BUCKET,
    cb.SOURCE_KEY,
    cb.SOURCE_LOCATION,
    cb.STATE_KEY,
    cb.OUTPUTS_KEY,
    cb.VARIABLES_KEY,
    cb.SPECS_ASSET,
    cb.STATE_BUCKET,
)
VARIABLES_KEY = "dev/pr-1/abc.inputs/3-1-infra.tfvars.json"
REPORT_TOKEN = "f" * 64  # the attempt's, as the executor passed it
HOSTILE = "$(touch {canary}); `touch {canary}`; ' \" \\n ${{IFS}}"


def load() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(BUILDSPEC.read_text())
    return document


def commands(document: dict[str, Any]) -> list[str]:
    return [c for phase in document["phases"].values() for c in phase.get("commands", [])]


def helper_source(document: dict[str, Any]) -> str:
    first = document["phases"]["install"]["commands"][0]
    body = first.split("<<'PY'\n", 1)[1]
    return body.rsplit("\nPY", 1)[0]


def shell_commands(document: dict[str, Any]) -> list[str]:
    """Every command except the helper's quoted heredoc (which the shell never expands)."""
    return [c for c in commands(document) if "<<'PY'" not in c]


def test_the_binary_is_pinned_and_its_checksum_verified_before_use() -> None:
    install = "\n".join(load()["phases"]["install"]["commands"])
    # Terraform from HashiCorp, OpenTofu from its GitHub releases; nothing else.
    assert (
        "releases.hashicorp.com/terraform/${TF_VERSION}/terraform_${TF_VERSION}_linux_" in install
    )
    assert (
        "github.com/opentofu/opentofu/releases/download/v${TF_VERSION}/"
        "tofu_${TF_VERSION}_linux_" in install
    )
    assert "TF_DISTRIBUTION must be terraform or opentofu" in install
    assert re.search(r'echo "\$\{TF_SHA256\}  /tmp/terraform\.zip" \| sha256sum -c -', install)
    assert install.index("sha256sum -c") < install.index("unzip")
    assert install.index("unzip") < install.index('"$TF_BIN" version')


def test_terraform_runs_from_the_helper_without_prompts_with_a_lock_timeout() -> None:
    build = load()["phases"]["build"]["commands"]
    assert build == ['python3 "$SW_HELPER" run', 'python3 "$SW_HELPER" outputs']
    source = helper_source(load())
    assert '"init", "-input=false"' in source
    assert 'terraform(action, "-auto-approve", "-input=false", "-no-color", lock_timeout())' in (
        source
    )
    assert 'terraform("plan", "-input=false", "-no-color", lock_timeout(), f"-out={PLAN}")' in (
        source
    )
    assert 'terraform("apply", "-input=false", "-no-color", lock_timeout(), str(PLAN))' in source
    # The helper runs `terraform output -json` itself: sensitive values never reach a
    # file or the build's log.
    assert '"output", "-json"' in source


def test_no_user_value_is_on_a_command_line() -> None:
    for command in shell_commands(load()):
        for name in USER_VARIABLES:
            assert name not in command, f"{name} appears in: {command}"


def test_the_report_is_sent_by_the_helper_after_the_build() -> None:
    """No shell step may swallow a refused report: the helper sends it and fails."""
    assert load()["phases"]["post_build"]["commands"] == ['python3 "$SW_HELPER" report']


def test_the_helper_uses_no_shell() -> None:
    source = helper_source(load())
    compile(source, "helper", "exec")
    assert "shell=True" not in source and "os.system" not in source


# ---- running the helper ---------------------------------------------------------------

FAKE_AWS = r'''#!{python}
"""aws stand-in: S3 from a folder, tables as JSON lists of items; put-events recorded
and answered as EventBridge does (FAKE_PUT_EVENTS: accept, refuse = FailedEntryCount 1
with exit 0 as the CLI does, or fail = the call itself failing)."""
import json, os, pathlib, shutil, sys
root = pathlib.Path(os.environ["FAKE_S3"])
args = sys.argv[1:]
def local(url):
    return root / url[len("s3://"):]
if args[:2] == ["events", "put-events"]:
    entries = json.loads(pathlib.Path(args[args.index("--entries") + 1][len("file://"):]).read_text())
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(["events", "put-events", entries]) + "\n")
    mode = os.environ.get("FAKE_PUT_EVENTS", "accept")
    if mode == "fail":
        sys.exit("An error occurred (AccessDeniedException) when calling the PutEvents operation")
    if mode == "refuse":
        print(json.dumps({"FailedEntryCount": 1, "Entries": [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]}))
    else:
        print(json.dumps({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}))
    sys.exit(0)
if args[:2] == ["dynamodb", "get-item"]:
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    table = pathlib.Path(os.environ["FAKE_TABLES"]) / args[args.index("--table-name") + 1]
    if not table.is_file():
        sys.exit("An error occurred (AccessDeniedException) when calling the GetItem operation")
    key = json.loads(args[args.index("--key") + 1])
    found = [i for i in json.loads(table.read_text()) if all(i.get(k) == v for k, v in key.items())]
    print(json.dumps({"Item": found[0]} if found else {}))
    sys.exit(0)
if args[:2] == ["dynamodb", "put-item"]:
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    table = pathlib.Path(os.environ["FAKE_TABLES"]) / args[args.index("--table-name") + 1]
    item = json.loads(args[args.index("--item") + 1])
    items = json.loads(table.read_text()) if table.is_file() else []
    items = [i for i in items if (i["pk"], i["sk"]) != (item["pk"], item["sk"])] + [item]
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(json.dumps(items))
    print("{}")
    sys.exit(0)
if args[:2] == ["s3api", "head-object"]:
    sys.exit(0 if (root / args[3] / args[5]).is_file() else 255)
if args[:2] == ["s3", "cp"] and args[2] == "--recursive":
    shutil.copytree(local(args[3]), args[4], dirs_exist_ok=True)
elif args[:2] == ["s3", "rm"]:
    local(args[2]).unlink()
elif args[:2] == ["s3", "cp"]:
    src, dst = args[2], args[3]
    if src.startswith("s3://"):
        shutil.copyfile(local(src), dst)
    else:
        local(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, local(dst))
else:
    sys.exit("unexpected aws call: " + json.dumps(args))
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
'''


@pytest.fixture
def helper(tmp_path: Path) -> dict[str, Any]:
    """The helper script, a fake ``aws`` on PATH, and a fresh build environment."""
    script = tmp_path / "statewright_build.py"
    script.write_text(helper_source(load()))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS.replace("{python}", sys.executable))
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    canary = tmp_path / "pwned"
    variables = {"stack_id": "pr-1", "note": HOSTILE.format(canary=canary), "replicas": 2}
    # Where the dispatcher put them before starting the build.
    stored = tmp_path / "s3" / "state-bucket" / VARIABLES_KEY
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps(variables))
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_S3": str(tmp_path / "s3"),
        "FAKE_AWS_LOG": str(tmp_path / "aws.log"),
        "FAKE_TABLES": str(tmp_path / "tables"),
        "SW_STATE_DIR": str(tmp_path / "state"),
        "SW_WORK": str(tmp_path / "state" / "work"),
        cb.STATE_BUCKET: "state-bucket",
        cb.STATE_KEY: "dev/pr-1/abc.tfstate",
        cb.OUTPUTS_KEY: "dev/pr-1/abc.outputs/3-1-infra.json",
        cb.VARIABLES_KEY: VARIABLES_KEY,
        cb.MACHINE_ID: "pr-1",
        cb.EPOCH: "3",
        cb.TASK: "infra",
        cb.ATTEMPT: "1",
        cb.ACTION: "apply",
        cb.BUS: "statewright-dev",
        cb.REPORT_TOKEN: REPORT_TOKEN,
        "CODEBUILD_BUILD_ID": "tf:1234",
    }
    return {
        "script": script,
        "env": env,
        "root": tmp_path,
        "canary": canary,
        "variables": json.dumps(variables),
        "stored_variables": stored,
    }


def run(helper: dict[str, Any], step: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(helper["script"]), step],
        env={**helper["env"], **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


def aws_calls(helper: dict[str, Any]) -> list[list[Any]]:
    log = helper["root"] / "aws.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def sent_reports(helper: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries the helper gave put-events, every call's."""
    calls = aws_calls(helper)
    return [e for call in calls if call[:2] == ["events", "put-events"] for e in call[2]]


def result(helper: dict[str, Any]) -> Any:
    """The task output the helper keeps for its report."""
    return json.loads((Path(helper["env"]["SW_STATE_DIR"]) / "result.json").read_text())


def put_s3(helper: dict[str, Any], bucket: str, key: str, text: str) -> None:
    path = helper["root"] / "s3" / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_prepare_fetches_every_object_under_a_prefix_and_writes_backend_and_variables(
    helper: dict[str, Any],
) -> None:
    put_s3(helper, "src", "modules/net/main.tf", 'variable "stack_id" {}\n')
    put_s3(helper, "src", "modules/net/vars.tf", 'variable "note" {}\n')
    done = run(
        helper,
        "prepare",
        **{cb.SOURCE_TYPE: "s3", cb.SOURCE_BUCKET: "src", cb.SOURCE_KEY: "modules/net"},
    )
    assert done.returncode == 0, done.stderr
    work = Path(helper["env"]["SW_WORK"])
    assert sorted(p.name for p in work.iterdir()) == [
        "main.tf",
        "statewright.auto.tfvars.json",
        "statewright_backend_override.tf.json",
        "vars.tf",
    ]
    assert (work / "statewright.auto.tfvars.json").read_text() == helper["variables"]
    # Read once, then deleted from the state bucket; never in the build's environment.
    assert not helper["stored_variables"].exists()
    assert not any(helper["variables"] in value for value in helper["env"].values())
    backend = json.loads((work / "statewright_backend_override.tf.json").read_text())
    assert backend == {
        "terraform": {
            "backend": {
                "s3": {
                    "bucket": "state-bucket",
                    "key": "dev/pr-1/abc.tfstate",
                    "use_lockfile": True,
                }
            }
        }
    }
    assert not helper["canary"].exists()


def put_variables_item(helper: dict[str, Any], key: str, text: str) -> None:
    """The item the dispatcher wrote (statewright/aws/build_variables.py), in the
    control plane's table."""
    tables = helper["root"] / "tables"
    tables.mkdir(exist_ok=True)
    item = {
        PARTITION_KEY: {"S": key},
        SORT_KEY: {"S": build_variables.SORT_KEY_VALUE},
        "variables": {"S": text},
        "expires_at": {"N": "1"},
    }
    (tables / "statewright-dev").write_text(json.dumps([item]))


def test_prepare_reads_the_variables_item_of_the_table_consistently(
    helper: dict[str, Any],
) -> None:
    put_s3(helper, "b", "machines.tf", "# one file\n")
    key = build_variables.item_key("pr-1:3:infra:1@2026-01-01T00:00:00.000Z")
    put_variables_item(helper, key, helper["variables"])
    source = {cb.SOURCE_TYPE: "s3", cb.SOURCE_BUCKET: "b", cb.SOURCE_KEY: "machines.tf"}
    item = {cb.VARIABLES_ITEM: key, cb.TABLE: "statewright-dev", cb.VARIABLES_KEY: ""}
    done = run(helper, "prepare", **source, **item)
    assert done.returncode == 0, done.stderr
    tfvars = Path(helper["env"]["SW_WORK"]) / "statewright.auto.tfvars.json"
    assert tfvars.read_text() == helper["variables"]
    [get] = [c for c in aws_calls(helper) if c[:2] == ["dynamodb", "get-item"]]
    assert "--consistent-read" in get
    assert json.loads(get[get.index("--key") + 1]) == {
        PARTITION_KEY: {"S": key},
        SORT_KEY: {"S": build_variables.SORT_KEY_VALUE},
    }
    # The S3 object was not needed (nor deleted), and nothing ran what the values say.
    assert helper["stored_variables"].exists()
    assert helper["variables"] not in done.stdout + done.stderr
    assert not helper["canary"].exists()


@pytest.mark.parametrize("table", ["statewright-dev", "unreadable"])
def test_a_variables_item_that_cannot_be_read_fails_the_build(
    helper: dict[str, Any], table: str
) -> None:
    put_s3(helper, "b", "machines.tf", "# one file\n")
    put_variables_item(helper, "BUILDVARS#other", helper["variables"])
    source = {cb.SOURCE_TYPE: "s3", cb.SOURCE_BUCKET: "b", cb.SOURCE_KEY: "machines.tf"}
    done = run(helper, "prepare", **source, **{cb.VARIABLES_ITEM: "BUILDVARS#x", cb.TABLE: table})
    assert done.returncode != 0 and "variables" in done.stderr
    assert not (Path(helper["env"]["SW_WORK"]) / "statewright.auto.tfvars.json").exists()


def test_prepare_fetches_a_single_object(helper: dict[str, Any]) -> None:
    put_s3(helper, "b", "machines.tf", "# one file\n")
    done = run(
        helper,
        "prepare",
        **{cb.SOURCE_TYPE: "s3", cb.SOURCE_BUCKET: "b", cb.SOURCE_KEY: "machines.tf"},
    )
    assert done.returncode == 0, done.stderr
    assert (Path(helper["env"]["SW_WORK"]) / "machines.tf").read_text() == "# one file\n"


def test_prepare_takes_a_local_module_from_the_deployed_specs_asset(
    helper: dict[str, Any],
) -> None:
    asset = helper["root"] / "s3" / "assets" / "specs.zip"
    asset.parent.mkdir(parents=True)
    with zipfile.ZipFile(asset, "w") as archive:
        archive.writestr("preview-env.yml", "version: 1.0\n")
        archive.writestr("modules/db/main.tf", "# db\n")
    env = {
        cb.SOURCE_TYPE: "local",
        cb.SPECS_ASSET: "s3://assets/specs.zip",
        cb.SOURCE_LOCATION: "modules/db",
    }
    done = run(helper, "prepare", **env)
    assert done.returncode == 0, done.stderr
    assert (Path(helper["env"]["SW_WORK"]) / "main.tf").read_text() == "# db\n"
    escaped = run(helper, "prepare", **{**env, cb.SOURCE_LOCATION: "../../etc"})
    assert escaped.returncode != 0 and "leaves" in escaped.stderr


def test_a_missing_source_fails_the_build_with_its_name(helper: dict[str, Any]) -> None:
    (helper["root"] / "s3" / "b").mkdir(parents=True)
    done = run(
        helper, "prepare", **{cb.SOURCE_TYPE: "s3", cb.SOURCE_BUCKET: "b", cb.SOURCE_KEY: "nothing"}
    )
    assert done.returncode != 0


SECRET = "hunter2-b7f1c0de"
TERRAFORM = Path(sys.executable).parent / "terraform"


def applied_module(root: Path) -> Path:
    """A module applied with the real Terraform (local state), one output sensitive."""
    work = root / "applied"
    work.mkdir()
    (work / "main.tf").write_text(
        'output "url" { value = "https://pr-1" }\n'
        f'output "password" {{\n  value = "{SECRET}"\n  sensitive = true\n}}\n'
    )
    for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-no-color"]):
        subprocess.run(
            [str(TERRAFORM), f"-chdir={work}", *args],
            check=True,
            capture_output=True,
            env={**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"},
            timeout=120,
        )
    return work


@pytest.mark.terraform
def test_outputs_are_reported_without_sensitive_values_and_stored_nowhere(
    helper: dict[str, Any],
) -> None:
    work = applied_module(helper["root"])
    Path(helper["env"]["SW_STATE_DIR"]).mkdir(parents=True)  # as prepare left it
    path = f"{helper['env']['PATH']}{os.pathsep}{TERRAFORM.parent}"
    stored_done = run(helper, "outputs", SW_WORK=str(work), PATH=path)
    assert stored_done.returncode == 0, stored_done.stderr
    expected = {"outputs": {"url": "https://pr-1"}, "redacted_outputs": ["password"]}
    assert result(helper) == expected
    done = run(helper, "report", CODEBUILD_BUILD_SUCCEEDING="1")
    assert done.returncode == 0, done.stderr
    state = Path(helper["env"]["SW_STATE_DIR"])
    [entry] = sent_reports(helper)
    assert entry["Source"] == "statewright" and entry["DetailType"] == "Task Finished"
    assert entry["EventBusName"] == "statewright-dev"
    assert json.loads(entry["Detail"]) == {
        "machine_id": "pr-1",
        "epoch": 3,
        "task": "infra",
        "attempt": 1,
        "status": "succeeded",
        "output": {"url": "https://pr-1"},
        "redacted_outputs": ["password"],
        "report_token": REPORT_TOKEN,
    }
    # Outputs this small travel in the report: no object in the bucket.
    assert not in_bucket(helper, helper["env"][cb.OUTPUTS_KEY]).exists()
    # The secret is in Terraform's state (the module's business), and nowhere else:
    # not in what was stored or sent, not in a file the helper wrote, not in its output.
    for file in [*state.rglob("*"), *(helper["root"] / "s3").rglob("*")]:
        assert not file.is_file() or SECRET not in file.read_text(errors="replace"), file
    for done_run in (stored_done, done):
        assert SECRET not in done_run.stdout + done_run.stderr


FAKE_TERRAFORM = """#!{python}
import os, sys
sys.stdout.write(os.environ["FAKE_OUTPUTS"])
"""


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"a": {"sensitive": False, "type": "number", "value": 1}},
        {
            "url": {"sensitive": False, "type": "string", "value": "https://x"},
            "ids": {"sensitive": False, "type": ["list", "string"], "value": ["a", "b"]},
            "password": {"sensitive": True, "type": "string", "value": "p"},
            "odd": {"type": "string", "value": "no sensitive flag"},
        },
    ],
)
def test_the_build_redacts_as_the_control_plane_does(
    helper: dict[str, Any], raw: dict[str, Any]
) -> None:
    terraform = helper["root"] / "bin" / "terraform"
    terraform.write_text(FAKE_TERRAFORM.replace("{python}", sys.executable))
    terraform.chmod(terraform.stat().st_mode | stat.S_IEXEC)
    Path(helper["env"]["SW_STATE_DIR"]).mkdir(parents=True)
    done = run(helper, "outputs", FAKE_OUTPUTS=json.dumps(raw))
    assert done.returncode == 0, done.stderr
    expected = terraform_outputs(raw)
    assert result(helper) == {
        "outputs": expected.values,
        "redacted_outputs": expected.redacted,
    }


def test_outputs_in_another_shape_fail_the_build(helper: dict[str, Any]) -> None:
    terraform = helper["root"] / "bin" / "terraform"
    terraform.write_text(FAKE_TERRAFORM.replace("{python}", sys.executable))
    terraform.chmod(terraform.stat().st_mode | stat.S_IEXEC)
    Path(helper["env"]["SW_STATE_DIR"]).mkdir(parents=True)
    done = run(helper, "outputs", FAKE_OUTPUTS=json.dumps({"a": {"type": "string"}}))
    assert done.returncode != 0 and "'a' has no value" in done.stderr
    assert not (Path(helper["env"]["SW_STATE_DIR"]) / "result.json").exists()


def test_a_failed_build_reports_a_failure(helper: dict[str, Any]) -> None:
    state = Path(helper["env"]["SW_STATE_DIR"])
    state.mkdir(parents=True)
    assert run(helper, "report", CODEBUILD_BUILD_SUCCEEDING="0").returncode == 0
    [entry] = sent_reports(helper)
    detail = json.loads(entry["Detail"])
    assert detail["status"] == "failed" and "tf:1234" in detail["error"]
    assert detail["report_token"] == REPORT_TOKEN  # a failure is reported only by its build too


def entry_size(entry: dict[str, Any]) -> int:
    """What EventBridge counts against its 256 KB an entry (Source, DetailType, Detail,
    Resources in UTF-8; 14 for a Time)."""
    fields = (entry["Source"], entry["DetailType"], entry["Detail"], *entry.get("Resources", []))
    return (14 if "Time" in entry else 0) + sum(len(f.encode("utf-8")) for f in fields)


@pytest.mark.parametrize(
    ("outputs", "inline"),
    [
        ({"blob": "x" * 150_000}, True),
        ({"blob": "x" * 300_000}, False),
        # ASCII-escaped in the Detail, six bytes a character: over the margin.
        ({"blob": "\u00e9" * 40_000}, False),
    ],
    ids=["fits", "too big", "too big once escaped"],
)
def test_outputs_travel_in_the_report_unless_too_big_then_the_report_names_them(
    helper: dict[str, Any], outputs: dict[str, Any], inline: bool
) -> None:
    state = Path(helper["env"]["SW_STATE_DIR"])
    state.mkdir(parents=True)
    stored = {"outputs": outputs, "redacted_outputs": ["pw"]}
    (state / "result.json").write_text(json.dumps(stored))
    done = run(helper, "report", CODEBUILD_BUILD_SUCCEEDING="1")
    assert done.returncode == 0, done.stderr
    [entry] = sent_reports(helper)
    assert entry_size(entry) < 256 * 1024
    detail = json.loads(entry["Detail"])
    key = helper["env"][cb.OUTPUTS_KEY]
    if inline:
        assert (detail["output"], detail["redacted_outputs"]) == (outputs, ["pw"])
        assert not in_bucket(helper, key).exists()
    else:
        assert "output" not in detail and detail["outputs_object"] == key
        assert detail["status"] == "succeeded" and detail["report_token"] == REPORT_TOKEN
        assert json.loads(in_bucket(helper, key).read_text()) == stored


@pytest.mark.parametrize("mode", ["refuse", "fail"])
@pytest.mark.parametrize("succeeding", ["1", "0"])
def test_a_report_eventbridge_does_not_accept_fails_the_build(
    helper: dict[str, Any], mode: str, succeeding: str
) -> None:
    """So a SUCCEEDED build always has its report on the way (the dispatcher waits for
    it), and one that cannot report ends FAILED, which fails its attempt."""
    state = Path(helper["env"]["SW_STATE_DIR"])
    state.mkdir(parents=True)
    (state / "result.json").write_text(json.dumps({"outputs": {}, "redacted_outputs": []}))
    done = run(helper, "report", CODEBUILD_BUILD_SUCCEEDING=succeeding, FAKE_PUT_EVENTS=mode)
    assert done.returncode != 0
    assert "EventBridge did not accept the report" in done.stderr
    assert len(sent_reports(helper)) == 1


def test_the_build_never_sleeps_for_a_backoff() -> None:
    """A retry's backoff is waited for by a timer before StartBuild: a build billed
    while it sleeps (and clamped by its own timeout) is what timers replaced."""
    document = load()
    source = helper_source(document)
    assert "sleep" not in source and "NOT_BEFORE" not in source
    assert not any("sleep" in c or " wait" in c for c in commands(document))


# ---- runs: plans, saved plans, Terraform's own messages, OpenTofu --------------------

PLAN_MODULE = BUILDSPEC.parents[2] / "layers/runtime/statewright/executors/terraform_plan.py"
PLAN_KEY = "dev/pr-1/abc.plans/check/3-1.tfplan"
RUN_ITEM = terraform_locks.record_key("dev/pr-1/abc.tfstate")
SIZED_MODULE = (
    'variable "size" {}\n'
    'output "size" { value = var.size }\n'
    f'output "password" {{\n  value = "{SECRET}"\n  sensitive = true\n}}\n'
)


def module(helper: dict[str, Any], main_tf: str, **variables: Any) -> Path:
    """The working directory as `prepare` leaves it (local state: no S3 backend here)."""
    work = Path(helper["env"]["SW_WORK"])
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.tf").write_text(main_tf)
    (work / "statewright.auto.tfvars.json").write_text(json.dumps(variables))
    return work


def run_terraform(
    helper: dict[str, Any], step: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """A helper step with the real Terraform on PATH and the plan module in the bucket."""
    put_s3(helper, "assets", "terraform_plan.py", PLAN_MODULE.read_text())
    env = {
        "PATH": f"{helper['env']['PATH']}{os.pathsep}{TERRAFORM.parent}",
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        cb.RUN_ITEM: RUN_ITEM,
        cb.TABLE: "statewright-dev",
        "STATEWRIGHT_PLAN_MODULE": "s3://assets/terraform_plan.py",
    }
    return run(helper, step, **{**env, **extra})


def in_bucket(helper: dict[str, Any], key: str) -> Path:
    return Path(helper["root"]) / "s3" / "state-bucket" / key


def reported(helper: dict[str, Any], **extra: str) -> dict[str, Any]:
    assert run(helper, "report", **extra).returncode == 0
    detail: dict[str, Any] = json.loads(sent_reports(helper)[-1]["Detail"])
    return detail


@pytest.mark.terraform
def test_a_plan_is_kept_beside_the_state_and_its_summary_is_the_output(
    helper: dict[str, Any],
) -> None:
    module(helper, SIZED_MODULE, size=1)
    plan = {cb.ACTION: "plan", "STATEWRIGHT_PLAN_KEY": PLAN_KEY}
    done = run_terraform(helper, "run", **plan)
    assert done.returncode == 0, done.stderr
    assert zipfile.is_zipfile(in_bucket(helper, PLAN_KEY))  # Terraform's saved plan
    stored = run_terraform(helper, "outputs", **plan)
    assert stored.returncode == 0, stored.stderr
    summary = {"changes": True, "add": 0, "change": 0, "destroy": 0, "resources": []}
    assert result(helper) == {"outputs": summary, "redacted_outputs": []}
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="1", **plan)
    assert detail["status"] == "succeeded" and detail["output"] == summary
    # The build said who it is before Terraform could take the state's lock: the
    # state's run record item, put whole (no shell, no value on a command line).
    [put] = [c for c in aws_calls(helper) if c[:2] == ["dynamodb", "put-item"]]
    assert put[put.index("--table-name") + 1] == "statewright-dev"
    [item] = json.loads((helper["root"] / "tables" / "statewright-dev").read_text())
    record = {name: value["S"] for name, value in item.items()}
    assert record[PARTITION_KEY] == RUN_ITEM
    assert record[SORT_KEY] == terraform_locks.SORT_KEY_VALUE
    assert record["build_id"] == "tf:1234"
    assert record["who"] == f"{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
    assert datetime.fromisoformat(record["started"]) <= datetime.now(UTC)
    # The plan holds the sensitive value (as the state does); nothing else written does.
    state = Path(helper["env"]["SW_STATE_DIR"])
    written = [p for p in state.rglob("*") if p.is_file() and state / "work" not in p.parents]
    for file in written:
        assert SECRET not in file.read_text(errors="replace"), file
    for step in (done, stored):
        assert SECRET not in step.stdout + step.stderr


@pytest.mark.terraform
def test_fail_on_changes_fails_the_task_with_drift_detected_and_keeps_no_plan(
    helper: dict[str, Any],
) -> None:
    module(helper, SIZED_MODULE, size=1)
    drift = {
        cb.ACTION: "plan",
        "STATEWRIGHT_PLAN_KEY": PLAN_KEY,
        "STATEWRIGHT_FAIL_ON_CHANGES": "true",
    }
    done = run_terraform(helper, "run", **drift)
    # The build did what it was asked; the task fails.
    assert done.returncode == 0, done.stderr
    assert "fail_on_changes" in done.stdout
    assert not in_bucket(helper, PLAN_KEY).exists()
    assert run_terraform(helper, "outputs", **drift).returncode == 0
    stored = result(helper)
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="1", **drift)
    for said in (stored, detail):
        assert said["error_type"] == "DriftDetected"
        assert said["error"] == (
            "the plan has changes (0 to add, 0 to change, 0 to destroy; outputs change), and "
            "the task says fail_on_changes: the environment drifted from its configuration"
        )
    assert detail["status"] == "failed" and detail["output"]["changes"] is True
    # Once applied, the same check finds nothing and succeeds.
    assert run_terraform(helper, "run", **{cb.ACTION: "apply"}).returncode == 0
    assert run_terraform(helper, "run", **drift).returncode == 0
    assert run_terraform(helper, "outputs", **drift).returncode == 0
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="1", **drift)
    assert detail["status"] == "succeeded" and detail["output"]["changes"] is False
    assert in_bucket(helper, PLAN_KEY).exists()


@pytest.mark.terraform
def test_apply_applies_exactly_the_saved_plan_and_a_stale_one_fails_with_terraforms_reason(
    helper: dict[str, Any],
) -> None:
    work = module(helper, SIZED_MODULE, size=1)
    assert run_terraform(helper, "run", **{cb.ACTION: "apply"}).returncode == 0
    (work / "statewright.auto.tfvars.json").write_text(json.dumps({"size": 2}))
    first, second = "dev/pr-1/abc.plans/plan/4-1.tfplan", "dev/pr-1/abc.plans/plan/5-1.tfplan"
    for key in (first, second):
        planned = run_terraform(helper, "run", **{cb.ACTION: "plan", "STATEWRIGHT_PLAN_KEY": key})
        assert planned.returncode == 0, planned.stderr
    # What the apply's own variables say does not matter: the plan is applied.
    (work / "statewright.auto.tfvars.json").write_text(json.dumps({"size": 3}))
    apply = {cb.ACTION: "apply", "STATEWRIGHT_PLAN_KEY": first}
    done = run_terraform(helper, "run", **apply)
    assert done.returncode == 0, done.stderr
    assert run_terraform(helper, "outputs", **apply).returncode == 0
    assert result(helper) == {"outputs": {"size": 2}, "redacted_outputs": ["password"]}
    # The second plan was made before the first was applied: Terraform refuses it.
    stale = run_terraform(helper, "run", **{**apply, "STATEWRIGHT_PLAN_KEY": second})
    assert stale.returncode != 0
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="0", **apply)
    assert detail["status"] == "failed"
    assert detail["error"].startswith("terraform apply failed in CodeBuild build tf:1234: ")
    assert (
        "terraform apply failed: Error: Saved plan is stale The given plan file can no"
        in (detail["error"])
    )


@pytest.mark.terraform
def test_a_missing_saved_plan_and_a_broken_module_fail_with_a_reason(
    helper: dict[str, Any],
) -> None:
    module(helper, SIZED_MODULE, size=1)
    gone = run_terraform(helper, "run", **{cb.ACTION: "apply", "STATEWRIGHT_PLAN_KEY": PLAN_KEY})
    assert gone.returncode != 0
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="0")
    assert "the saved plan to apply is not in the state bucket" in detail["error"]
    module(helper, 'output "x" {\n  value = \n}\n')
    broken = run_terraform(helper, "run", **{cb.ACTION: "apply"})
    assert broken.returncode != 0
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="0")
    assert "terraform init failed: Error:" in detail["error"]
    assert "the saved plan" not in detail["error"]


FAKE_TOFU = """#!{python}
import json, os, sys
with open(os.environ["FAKE_TOFU_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "output" in sys.argv:
    sys.stdout.write('{"url": {"sensitive": false, "type": "string", "value": "https://x"}}')
"""


def test_opentofu_builds_run_tofu(helper: dict[str, Any]) -> None:
    tofu = helper["root"] / "bin" / "tofu"
    tofu.write_text(FAKE_TOFU.replace("{python}", sys.executable))
    tofu.chmod(tofu.stat().st_mode | stat.S_IEXEC)
    log = helper["root"] / "tofu.log"
    extra = {
        "TF_DISTRIBUTION": "opentofu",
        "FAKE_TOFU_LOG": str(log),
        cb.ACTION: "destroy",
        cb.RUN_ITEM: RUN_ITEM,
        cb.TABLE: "statewright-dev",
    }
    Path(helper["env"]["SW_WORK"]).mkdir(parents=True)
    for step in ("run", "outputs"):
        done = run(helper, step, **extra)
        assert done.returncode == 0, done.stderr
    calls = [json.loads(line)[1:2] for line in log.read_text().splitlines()]
    assert calls == [["init"], ["destroy"], ["output"]]
    assert result(helper) == {"outputs": {"url": "https://x"}, "redacted_outputs": []}


@pytest.mark.terraform
def test_a_plan_made_before_the_state_existed_is_refused_once_it_exists(
    helper: dict[str, Any],
) -> None:
    """Terraform cannot find such a plan stale (it has no lineage to compare): the build
    marks it and refuses it once another run has written the state."""
    module(helper, SIZED_MODULE, size=1)
    plan = {cb.ACTION: "plan", "STATEWRIGHT_PLAN_KEY": PLAN_KEY}
    assert run_terraform(helper, "run", **plan).returncode == 0
    assert in_bucket(helper, f"{PLAN_KEY}.before-state").exists()
    put_s3(helper, "state-bucket", helper["env"][cb.STATE_KEY], "{}")  # another run's state
    apply = {cb.ACTION: "apply", "STATEWRIGHT_PLAN_KEY": PLAN_KEY}
    refused = run_terraform(helper, "run", **apply)
    assert refused.returncode != 0
    detail = reported(helper, CODEBUILD_BUILD_SUCCEEDING="0", **apply)
    assert (
        "the saved plan is stale: it was made before this machine's state existed"
        in (detail["error"])
    )
    # A plan made once the state exists carries no mark: Terraform itself judges it.
    later = "dev/pr-1/abc.plans/check/4-1.tfplan"
    assert run_terraform(helper, "run", **{**plan, "STATEWRIGHT_PLAN_KEY": later}).returncode == 0
    assert in_bucket(helper, later).exists()
    assert not in_bucket(helper, f"{later}.before-state").exists()
