"""Least privilege: no `Action: *`, no `Resource: *` where a real ARN exists, invoke only
on the configured prefix, every role scoped to its own resources."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from statewright.aws import build_variables, terraform_locks

from infra.paths import REPO_ROOT
from tests.infra.conftest import Synthesized, own_arn

# Actions that have no resource-level permissions in IAM.
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_statements(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """(policy logical id, statement) for every inline IAM policy and resource policy."""
    found = []
    for logical_id, resource in synth.resources.items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Policy":
            documents.append(props["PolicyDocument"])
        elif resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents:
            found += [(logical_id, s) for s in document["Statement"]]
    return found


def _role_statements(synth: Synthesized, role_prefix: str) -> list[dict[str, Any]]:
    role_ids = [k for k in synth.of_type("AWS::IAM::Role") if k.startswith(role_prefix)]
    assert len(role_ids) == 1, role_ids
    statements = []
    for resource in synth.of_type("AWS::IAM::Policy").values():
        roles = resource["Properties"]["Roles"]
        if {"Ref": role_ids[0]} in roles:
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _listify(s["Action"])}


def _statements_with(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in _listify(s["Action"])]


def test_no_action_star_and_no_resource_star_where_an_arn_exists(synth: Synthesized) -> None:
    for policy, statement in _policy_statements(synth):
        actions = _listify(statement["Action"])
        assert "*" not in actions, (policy, statement)
        assert all(not a.endswith(":*") for a in actions), (policy, statement)
        if "*" in _listify(statement.get("Resource", [])):
            assert set(actions) <= RESOURCELESS_ACTIONS, (policy, statement)
    assert "NotAction" not in json.dumps(synth.raw)


def test_managed_policies_only_where_configured_or_required(synth: Synthesized) -> None:
    for logical_id, role in synth.of_type("AWS::IAM::Role").items():
        managed = role["Properties"].get("ManagedPolicyArns", [])
        if logical_id.startswith("HttpApiCloudWatchRole"):
            assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(managed)
        elif logical_id.startswith("TerraformRole"):
            assert managed == synth.settings.terraform_managed_policy_arns
        else:
            assert managed == [], (logical_id, managed)


def _function_arn(name: str) -> dict[str, Any]:
    """A function ARN the template builds from a name (CDK's format_arn)."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":lambda:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":function:{name}",
            ],
        ]
    }


def test_only_the_task_runner_invokes_task_functions_and_only_by_prefix(
    synth: Synthesized,
) -> None:
    runner = _statements_with(_role_statements(synth, "TasksRunnerRole"), "lambda:InvokeFunction")
    assert len(runner) == 1
    assert runner[0]["Resource"] == _function_arn(f"{synth.settings.task_function_prefix}*")
    runner_id, _ = synth.one("AWS::Lambda::Function", "TasksRunner")
    itself = _function_arn(f"statewright-{synth.env}-dispatcher")
    # The dispatcher also invokes itself: a schedule's fan-out continues that way.
    for role, also in (("DispatchDispatcherRole", [itself]), ("ReconcileReconcilerRole", [])):
        invoke = _statements_with(_role_statements(synth, role), "lambda:InvokeFunction")
        resources = [s["Resource"] for s in invoke]
        assert resources == [{"Fn::GetAtt": [runner_id, "Arn"]}, *also], role
    assert not _statements_with(_role_statements(synth, "TerraformRole"), "lambda:InvokeFunction")


def test_service_roles_reach_only_their_own_resources(synth: Synthesized) -> None:
    table_id, _ = synth.one("AWS::DynamoDB::Table")
    bus_id, _ = synth.one("AWS::Events::EventBus")
    project_id, _ = synth.one("AWS::CodeBuild::Project")
    bucket_id, _ = synth.one("AWS::S3::Bucket", "TerraformStateBucket")
    for role in ("DispatchDispatcherRole", "ReconcileReconcilerRole"):
        statements = _role_statements(synth, role)
        (table,) = [s for s in statements if s.get("Sid") == "MachinesTable"]
        assert table["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}
        (index,) = [s for s in statements if s.get("Sid") == "ListMachinesIndex"]
        assert index["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, "/index/by_spec"]]
        }
        (due,) = [s for s in statements if s.get("Sid") == "DueMachinesIndex"]
        assert due["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, "/index/by_due"]]
        }
        assert "dynamodb:DeleteTable" not in _actions(statements)
        (put,) = _statements_with(statements, "events:PutEvents")
        assert put["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
        (builds,) = _statements_with(statements, "codebuild:StartBuild")
        assert set(builds["Action"]) == {
            "codebuild:StartBuild",
            "codebuild:StopBuild",
            "codebuild:BatchGetBuilds",
        }
        assert project_id in json.dumps(builds["Resource"])
        (outputs,) = _statements_with(statements, "s3:GetObject")
        assert outputs["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{synth.env}/*"]]
        }
        (listing,) = _statements_with(statements, "s3:ListBucket")
        assert listing["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
        # Writes only the attempts' variables (never a state, a lock or outputs).
        (variables,) = _statements_with(statements, "s3:PutObject")
        assert variables["Action"] == "s3:PutObject"
        assert variables["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{synth.env}/*.inputs/*"]]
        }
        # Deletes only Terraform's lock objects (a lock a stopped build left), never a
        # state, a plan or outputs.
        (locks,) = _statements_with(statements, "s3:DeleteObject")
        assert locks["Action"] == "s3:DeleteObject"
        assert locks["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{synth.env}/*.tflock"]]
        }


def test_terraform_runner_role_is_scoped_to_state_specs_bus_logs_and_configuration(
    synth: Synthesized,
) -> None:
    statements = _role_statements(synth, "TerraformRole")
    bucket_id, _ = synth.one("AWS::S3::Bucket", "TerraformStateBucket")
    by_sid = {s.get("Sid"): s for s in statements}
    assert by_sid["ReadWriteThisEnvironmentsState"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{synth.env}/*"]]
    }
    assert by_sid["ListStateBucket"]["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    specs = json.dumps(by_sid["ReadSpecsAsset"]["Resource"])
    assert "cdk-hnb659fds-assets" in specs and ".zip" in specs
    # ... and the plan summary module, one file: the two assets, nothing else.
    assert ".py" in specs and len(by_sid["ReadSpecsAsset"]["Resource"]) == 2
    log_group_id, _ = synth.one("AWS::Logs::LogGroup", "TerraformLogs")
    assert by_sid["LogToOwnLogGroup"]["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    # Nothing CDK would have added on its own (report groups, default log groups).
    assert not any("codebuild:" in a for a in _actions(statements))
    configured = [
        s
        for logical_id, s in _policy_statements(synth)
        if logical_id.startswith("TerraformConfiguredPolicy")
    ]
    expected = [s.model_dump(exclude_none=True) for s in synth.settings.terraform_policy_statements]
    assert [
        {**s, "Action": _listify(s["Action"]), "Resource": _listify(s["Resource"])}
        for s in configured
    ] == expected


def test_bus_policy_lets_only_the_control_plane_send_internal_events(synth: Synthesized) -> None:
    bus_id, _ = synth.one("AWS::Events::EventBus")
    _, policy = synth.one("AWS::Events::EventBusPolicy")
    statement = policy["Properties"]["Statement"]
    assert policy["Properties"]["EventBusName"] == {"Ref": bus_id}
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Condition"]["StringEquals"] == {"events:source": "statewright"}
    trusted = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    role_ids = {
        k
        for k in synth.of_type("AWS::IAM::Role")
        if k.split("Role")[0]
        in {"DispatchDispatcher", "ReconcileReconciler", "TasksRunner", "Terraform"}
    }
    assert len(role_ids) == 4
    assert sorted(t["Fn::GetAtt"][0] for t in trusted) == sorted(role_ids)


def _allows_put(statement: dict[str, Any], entries: list[tuple[str, str]]) -> bool:
    """Whether an Allow statement lets one PutEvents call with these (source,
    detail-type) entries through, evaluated as IAM does for the operators used here
    (an unknown operator fails the test rather than passing it)."""
    values = {
        "events:source": [source for source, _ in entries],
        "events:detail-type": [detail_type for _, detail_type in entries],
    }
    for operator, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            present = values.get(key, [])
            if operator == "ForAllValues:StringEquals":  # every value among those listed
                if not set(present) <= set(_listify(expected)):
                    return False
            elif operator == "Null":  # "false": the key must be in the request
                assert expected == "false", (key, expected)
                if not present:
                    return False
            else:
                raise AssertionError(f"operator {operator} not evaluated by this test")
    return True


FORGERIES = [
    [("statewright", "Machine Event")],  # NEXT / FAILED
    [("statewright", "Task Finished"), ("statewright", "Machine Event")],  # hidden in a batch
    [("statewright", "Machine State Changed")],
    [("statewright", "Machine Deleted")],
    [("my.app", "Machine Event")],  # an external event, as if a user's rule sent it
    [("lambda", "Lambda Function Invocation Result - Failure")],
    [("lambda", "Task Finished")],
    [],
]


def test_roles_that_run_tasks_may_put_only_their_reports(synth: Synthesized) -> None:
    """Users' modules run with the Terraform runner's role: it may put its build's Task
    Finished and nothing else on the bus (no NEXT/FAILED, no external event); the task
    runner likewise, plus the failure record of its on-failure destination."""
    bus_id, _ = synth.one("AWS::Events::EventBus")
    report = [("statewright", "Task Finished")]
    failure = [("lambda", "Lambda Function Invocation Result - Failure")]
    for role, allowed in (("TerraformRole", [report]), ("TasksRunnerRole", [report, failure])):
        puts = _statements_with(_role_statements(synth, role), "events:PutEvents")
        assert puts, role
        for put in puts:
            assert put["Effect"] == "Allow" and put["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
            assert put.get("Condition"), (role, put)  # no unconditioned PutEvents at all
        for entries in allowed:
            assert any(_allows_put(p, entries) for p in puts), (role, entries)
        for entries in FORGERIES:
            if entries not in allowed:
                assert not any(_allows_put(p, entries) for p in puts), (role, entries)
    # The dispatcher's and the reconciler's own publishing is untouched.
    for role in ("DispatchDispatcherRole", "ReconcileReconcilerRole"):
        puts = _statements_with(_role_statements(synth, role), "events:PutEvents")
        assert all(_allows_put(p, FORGERIES[0]) for p in puts), role


def _allows_table_call(statement: dict[str, Any], action: str, leading_key: str) -> bool:
    """Whether an Allow statement lets one call of ``action`` on items whose partition key
    is ``leading_key`` through, evaluated as IAM does for the operators used here (an
    unknown operator fails the test rather than passing it)."""
    if statement["Effect"] != "Allow" or not any(
        fnmatch.fnmatchcase(action, a) for a in _listify(statement["Action"])
    ):
        return False
    values = {"dynamodb:LeadingKeys": [leading_key]}
    for operator, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            present = values.get(key, [])
            if operator == "ForAllValues:StringLike":  # every value matches a pattern
                patterns = _listify(expected)
                if not all(any(fnmatch.fnmatchcase(v, p) for p in patterns) for v in present):
                    return False
            else:
                raise AssertionError(f"operator {operator} not evaluated by this test")
    return True


def test_builds_may_read_only_their_variables_items_of_the_table(synth: Synthesized) -> None:
    """Users' modules run with the Terraform runner's role: it may GetItem the attempts'
    variables items (statewright/aws/build_variables.py) and nothing else of the table —
    no machine, spec, idempotency record or the report-token key, no query, scan or
    write."""
    statements = _runner_table_statements(synth)
    own = build_variables.item_key("pr-1:3:infra:1@2026-01-01T00:00:00.000Z")
    assert any(_allows_table_call(s, "dynamodb:GetItem", own) for s in statements)
    for key in (
        "MACHINE#pr-1",
        "CONFIG#page-token-key",
        "SPEC#sha256:abc",
        "IDEMPOTENCY#k",
        own.lower(),
        "X" + own,
    ):
        assert not any(_allows_table_call(s, "dynamodb:GetItem", key) for s in statements), key
    for action in ("Query", "Scan", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"):
        call = f"dynamodb:{action}"
        assert not any(_allows_table_call(s, call, own) for s in statements), call


def _runner_table_statements(synth: Synthesized) -> list[dict[str, Any]]:
    """The Terraform runner role's DynamoDB statements, all on the control plane's table."""
    table_id, _ = synth.one("AWS::DynamoDB::Table")
    statements = [
        s
        for s in _role_statements(synth, "TerraformRole")
        if any(a.startswith("dynamodb:") for a in _listify(s["Action"]))
    ]
    assert statements and all(
        s["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]} for s in statements
    )
    return statements


def test_builds_may_write_only_run_record_items_of_the_table(synth: Synthesized) -> None:
    """A build writes its state's run record (statewright/aws/terraform_locks.py) with
    PutItem; it may put no other item — no machine, variables item or anything else —
    and update or delete none, its own run record included."""
    statements = _runner_table_statements(synth)
    own = terraform_locks.record_key("dev/pr-1/0123456789abcdef.tfstate")
    assert any(_allows_table_call(s, "dynamodb:PutItem", own) for s in statements)
    for key in (
        "MACHINE#pr-1",
        build_variables.item_key("pr-1:3:infra:1@2026-01-01T00:00:00.000Z"),
        "CONFIG#page-token-key",
        "SPEC#sha256:abc",
        "IDEMPOTENCY#k",
        "DATA#pr-1",
        own.lower(),
        "X" + own,
    ):
        for action in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
            call = f"dynamodb:{action}"
            assert not any(_allows_table_call(s, call, key) for s in statements), (call, key)
    for action in ("UpdateItem", "DeleteItem", "BatchWriteItem", "Query", "Scan"):
        call = f"dynamodb:{action}"
        assert not any(_allows_table_call(s, call, own) for s in statements), call


# What statewright/aws/dynamodb_store.py calls, by where it calls it.
TABLE_CALLS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
INDEX_CALLS = {"dynamodb:Query", "dynamodb:Scan"}


def test_service_roles_get_exactly_the_table_calls_the_store_makes(synth: Synthesized) -> None:
    for role in ("DispatchDispatcherRole", "ReconcileReconcilerRole"):
        by_sid = {s.get("Sid"): s for s in _role_statements(synth, role)}
        assert set(_listify(by_sid["MachinesTable"]["Action"])) == TABLE_CALLS
        # The index is read-only and the store lists through it alone; no Scan of the
        # table, no ConditionCheckItem (the store uses no transactions).
        assert set(_listify(by_sid["ListMachinesIndex"]["Action"])) == INDEX_CALLS
        # The reconciler's due index is only ever queried.
        assert set(_listify(by_sid["DueMachinesIndex"]["Action"])) == {"dynamodb:Query"}
        dynamodb = {a for a in _actions(list(by_sid.values())) if a.startswith("dynamodb:")}
        assert dynamodb == TABLE_CALLS | INDEX_CALLS


def test_store_makes_no_table_call_beyond_the_grant() -> None:
    # The grant above is only least privilege if the store really needs nothing else.
    source = (REPO_ROOT / "layers/runtime/statewright/aws/dynamodb_store.py").read_text()
    calls = set(
        re.findall(
            r"\.(get_item|batch_get_item|query|scan|put_item|update_item|"
            r"delete_item|batch_write_item|transact_\w+|condition_check\w*)\(",
            source,
        )
    )
    assert calls <= {
        "get_item",
        "batch_get_item",
        "query",
        "scan",
        "put_item",
        "delete_item",
        "batch_write_item",
    }, calls
    # Every scan is of the index.
    for match in re.finditer(r"def _list_page\(.*?return self\._client\.scan", source, re.S):
        assert '"IndexName": LIST_INDEX' in match.group(0)
    assert source.count(".scan(") == 1


def test_codebuild_may_assume_the_runner_role_only_for_this_project(synth: Synthesized) -> None:
    _, role = synth.one("AWS::IAM::Role", "TerraformRole")
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {
            "aws:SourceArn": [
                own_arn("codebuild", f"project/statewright-{synth.env}-terraform"),
                own_arn("codebuild", f"build/statewright-{synth.env}-terraform:*"),
            ]
        },
    }
    _, project = synth.one("AWS::CodeBuild::Project")
    assert project["Properties"]["Name"] == f"statewright-{synth.env}-terraform"
