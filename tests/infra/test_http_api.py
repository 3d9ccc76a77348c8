"""The HTTP API option (cdk.json ``api.type: http``): the same routes, each IAM authorized,
sent to the dispatcher as payload format 2.0 events through one integration with one
invoke permission; JSON access logs and throttling on the v1 stage; cfn-lint and cdk-nag
clean, with nothing acknowledged for the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.app import repository_context
from infra.settings import CONTEXT_KEY
from tests.infra.conftest import (
    Synthesized,
    acknowledged_rules,
    api_invoke_permissions,
    cfn_lint_findings,
    synthesize,
)
from tests.infra.test_api import EXPECTED_ROUTES
from tests.infra.test_stack import kept_with_a_fixed_name


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    """dev, as cdk.json declares it, with ``api.type: http``."""
    context: dict[str, Any] = json.loads(json.dumps(repository_context()))
    context[CONTEXT_KEY]["dev"]["api"] = {"type": "http"}
    yield synthesize("dev", tmp_path_factory.mktemp("cdk-http"), context)


def _routes(http: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in http.of_type("AWS::ApiGatewayV2::Route").values()
    }


def test_an_http_api_replaces_the_rest_api(http: Synthesized) -> None:
    _, api = http.one("AWS::ApiGatewayV2::Api")
    assert api["Properties"]["ProtocolType"] == "HTTP"
    assert api["Properties"]["Name"] == "statewright-dev"
    assert not http.of_type("AWS::ApiGateway::RestApi")
    assert not http.of_type("AWS::ApiGateway::GatewayResponse")
    dispatcher = http.function("dispatcher")
    assert dispatcher["Environment"]["Variables"]["STATEWRIGHT_API_TYPE"] == "http"


def test_every_route_of_the_design_and_the_default_route_is_iam_authorized(
    http: Synthesized,
) -> None:
    routes = _routes(http)
    assert set(routes) == {f"{method} {path}" for method, path in EXPECTED_ROUTES} | {"$default"}
    for key, route in routes.items():
        assert route["AuthorizationType"] == "AWS_IAM", key


def test_every_route_reaches_the_dispatcher_as_payload_format_2(http: Synthesized) -> None:
    integration_id, integration = http.one("AWS::ApiGatewayV2::Integration")
    dispatcher_id, _ = http.one("AWS::Lambda::Function", "DispatchDispatcher")
    props = integration["Properties"]
    assert props["IntegrationType"] == "AWS_PROXY"
    assert props["PayloadFormatVersion"] == "2.0"
    assert props["IntegrationUri"] == {"Fn::GetAtt": [dispatcher_id, "Arn"]}
    target = {"Fn::Join": ["", ["integrations/", {"Ref": integration_id}]]}
    assert all(route["Target"] == target for route in _routes(http).values())


def test_one_invoke_permission_scoped_to_this_api(http: Synthesized) -> None:
    api_id, _ = http.one("AWS::ApiGatewayV2::Api")
    dispatcher_id, _ = http.one("AWS::Lambda::Function", "DispatchDispatcher")
    from_api = api_invoke_permissions(http)
    assert len(from_api) == 1
    (permission,) = from_api
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["FunctionName"] == {"Fn::GetAtt": [dispatcher_id, "Arn"]}
    parts = permission["SourceArn"]["Fn::Join"][1]
    assert {"Ref": api_id} in parts  # this API's routes only, not any API of the account
    assert ":execute-api:" in parts


def test_the_v1_stage_logs_access_as_json_and_throttles(http: Synthesized) -> None:
    _, stage = http.one("AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "v1"
    assert props["AutoDeploy"] is True
    throttling = http.settings.api_throttling
    assert props["DefaultRouteSettings"] == {
        "DetailedMetricsEnabled": False,
        "ThrottlingBurstLimit": throttling.burst_limit,
        "ThrottlingRateLimit": throttling.rate_limit,
    }
    log_id, group = http.one("AWS::Logs::LogGroup", "HttpAccessLogs")
    assert group["Properties"]["RetentionInDays"] == http.settings.log_retention_days
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [log_id, "Arn"]}
    fields = json.loads(props["AccessLogSettings"]["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert {"caller", "userArn", "status", "httpMethod", "routeKey", "errorType"} <= set(fields)


def test_the_endpoint_output_names_the_stage(http: Synthesized) -> None:
    api_id, _ = http.one("AWS::ApiGatewayV2::Api")
    value = http.raw["Outputs"]["ApiEndpoint"]["Value"]
    assert value == {"Fn::Join": ["", [{"Fn::GetAtt": [api_id, "ApiEndpoint"]}, "/v1/"]]}


def test_the_dashboard_and_alarm_watch_the_http_api(http: Synthesized) -> None:
    api_id, _ = http.one("AWS::ApiGatewayV2::Api")
    alarms = [
        a["Properties"]
        for a in http.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "5xx"
    ]
    assert len(alarms) == 1
    assert alarms[0]["Namespace"] == "AWS/ApiGateway"
    assert alarms[0]["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": api_id}}]


def test_cfn_lint_and_cdk_nag_are_clean_with_nothing_acknowledged_for_the_api(
    http: Synthesized,
) -> None:
    assert cfn_lint_findings(http.template_path) == ""
    # The synth passed cdk-nag; the REST API's acknowledgments (WAF, Cognito, execution
    # logs) are not carried over, and none was needed for the HTTP API.
    acknowledged = acknowledged_rules(http.outdir / "statewright-dev.metadata.json")
    assert not [rule for rule in acknowledged if "APIG" in rule or "COG" in rule]
    assert kept_with_a_fixed_name(http.raw) == []
