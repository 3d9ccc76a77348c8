"""CodeBuild Terraform runner: not privileged, the buildspec from the tree, pinned
Terraform, the state bucket locked down, the specs asset for `local` sources."""

from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path

import pytest
import yaml

from infra.paths import REPO_ROOT, MissingSourceError, SourcePaths
from infra.terraform_runner import BuildspecError, load_buildspec
from tests.infra.conftest import Synthesized

PLAN_MODULE = "layers/runtime/statewright/executors/terraform_plan.py"


def test_project_runs_the_repository_buildspec_unprivileged(synth: Synthesized) -> None:
    _, project = synth.one("AWS::CodeBuild::Project")
    props = project["Properties"]
    assert props["Name"] == f"statewright-{synth.env}-terraform"
    assert props["Environment"]["PrivilegedMode"] is False
    assert props["Environment"]["Type"] == "LINUX_CONTAINER"
    assert props["Environment"]["ComputeType"] == (
        f"BUILD_GENERAL1_{synth.settings.terraform.compute_type}"
    )
    # Each build runs for its task's timeout (StartBuild's override); none is set here.
    assert "TimeoutInMinutes" not in props
    assert props["Artifacts"] == {"Type": "NO_ARTIFACTS"}
    buildspec = yaml.safe_load(props["Source"]["BuildSpec"])
    assert buildspec == yaml.safe_load((REPO_ROOT / "infra/buildspec/terraform.yml").read_text())


def test_project_environment_pins_terraform_and_names_the_control_plane(
    synth: Synthesized,
) -> None:
    _, project = synth.one("AWS::CodeBuild::Project")
    env = {
        v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]
    }
    bucket_id, _ = synth.one("AWS::S3::Bucket", "TerraformStateBucket")
    assert env["TF_DISTRIBUTION"] == synth.settings.terraform.distribution == "terraform"
    assert env["TF_VERSION"] == synth.settings.terraform.version
    assert re.fullmatch(r"[0-9a-f]{64}", env["TF_SHA256"])
    assert env["TF_SHA256"] == synth.settings.terraform.sha256
    assert env["STATEWRIGHT_STATE_BUCKET"] == {"Ref": bucket_id}
    table_id, _ = synth.one("AWS::DynamoDB::Table")
    assert env["STATEWRIGHT_TABLE"] == {"Ref": table_id}  # where its variables item is
    assert env["STATEWRIGHT_BUS"] == f"statewright-{synth.env}"
    assert env["STATEWRIGHT_ENV"] == synth.env
    url = env["STATEWRIGHT_SPECS_ASSET"]["Fn::Sub"]
    match = re.fullmatch(
        r"s3://cdk-hnb659fds-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}/(\w+\.zip)", url
    )
    assert match, url
    # The asset is the specs/ folder as it is in the tree.
    specs = synth.asset_dir(match.group(1))
    comparison = filecmp.dircmp(specs, REPO_ROOT / "specs")
    assert not comparison.left_only and not comparison.right_only
    assert not comparison.diff_files
    # The builds summarise plans with the very file the local mode imports.
    module = env["STATEWRIGHT_PLAN_MODULE"]["Fn::Sub"]
    match = re.fullmatch(
        r"s3://cdk-hnb659fds-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}/(\w+\.py)", module
    )
    assert match, module
    manifest = json.loads((synth.outdir / f"statewright-{synth.env}.assets.json").read_text())
    source = manifest["files"][match.group(1).removesuffix(".py")]["source"]
    assert source["packaging"] == "file"
    assert filecmp.cmp(synth.outdir / source["path"], REPO_ROOT / PLAN_MODULE, shallow=False)


def test_state_bucket_is_versioned_encrypted_private_and_tls_only(synth: Synthesized) -> None:
    bucket_id, bucket = synth.one("AWS::S3::Bucket", "TerraformStateBucket")
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    logs_id, _ = synth.one("AWS::S3::Bucket", "TerraformStateAccessLogs")
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    policies = [
        p["Properties"]
        for p in synth.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policies[0]["PolicyDocument"]["Statement"]
    )
    assert bucket["DeletionPolicy"] == ("Retain" if synth.settings.retain else "Delete")


def test_missing_or_broken_buildspec_is_a_clear_error(tmp_path: Path) -> None:
    paths = SourcePaths(root=tmp_path)
    with pytest.raises(MissingSourceError, match=r"Terraform buildspec is not in the tree"):
        load_buildspec(paths)
    paths.buildspec.parent.mkdir(parents=True)
    paths.buildspec.write_text("version: 0.2\nphases: [unclosed\n")
    with pytest.raises(BuildspecError, match="not valid YAML"):
        load_buildspec(paths)
    paths.buildspec.write_text("just: a mapping\n")
    with pytest.raises(BuildspecError, match="needs 'version' and 'phases'"):
        load_buildspec(paths)
