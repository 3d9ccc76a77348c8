"""The REST API: the routes of docs/api.md#routes, each IAM-authorized, validated and proxied to the
dispatcher; JSON access logs, throttling from cdk.json, errors in the API's shape."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized

EXPECTED_ROUTES = {
    ("GET", "/openapi.json"),
    ("GET", "/specs"),
    ("GET", "/specs/{name}"),
    ("GET", "/machines"),
    ("POST", "/machines"),
    ("GET", "/machines/{id}"),
    ("POST", "/machines/{id}/events"),
    ("GET", "/machines/{id}/history"),
    ("POST", "/machines/{id}/retry"),
}


def _paths(synth: Synthesized) -> dict[str, str]:
    """API Gateway resource id (a Ref's target, or the root's GetAtt as JSON) -> path."""
    resources = synth.of_type("AWS::ApiGateway::Resource")
    api_id, _ = synth.one("AWS::ApiGateway::RestApi")
    root = json.dumps({"Fn::GetAtt": [api_id, "RootResourceId"]})

    def path_of(logical_id: str) -> str:
        props = resources[logical_id]["Properties"]
        parent = props["ParentId"]
        prefix = "" if json.dumps(parent) == root else path_of(parent["Ref"])
        return f"{prefix}/{props['PathPart']}"

    paths = {logical_id: path_of(logical_id) for logical_id in resources}
    paths[root] = "/"
    return paths


def _methods(synth: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    paths = _paths(synth)
    methods = {}
    for method in synth.of_type("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        key = resource["Ref"] if "Ref" in resource else json.dumps(resource)
        methods[(props["HttpMethod"], paths[key])] = props
    return methods


def test_routes_are_exactly_the_designs_each_iam_authorized_and_validated(
    synth: Synthesized,
) -> None:
    methods = _methods(synth)
    designed = {route: props for route, props in methods.items() if route[0] != "ANY"}
    assert set(designed) == EXPECTED_ROUTES
    validator_id, validator = synth.one("AWS::ApiGateway::RequestValidator")
    assert validator["Properties"]["ValidateRequestBody"] is True
    assert validator["Properties"]["ValidateRequestParameters"] is True
    for route, props in designed.items():
        assert props["RequestValidatorId"] == {"Ref": validator_id}, route
        for segment in re.findall(r"{(\w+)}", route[1]):
            assert props["RequestParameters"][f"method.request.path.{segment}"] is True


def test_every_method_is_iam_authorized_and_proxied_to_the_dispatcher(
    synth: Synthesized,
) -> None:
    dispatcher_id, _ = synth.one("AWS::Lambda::Function", "DispatchDispatcher")
    for route, props in _methods(synth).items():
        assert props["AuthorizationType"] == "AWS_IAM", route
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY", route
        assert dispatcher_id in json.dumps(integration["Uri"]), route


def test_other_methods_and_paths_reach_the_api_for_its_405_and_404(synth: Synthesized) -> None:
    # So the deployed API answers like the local one, not with API Gateway's 403.
    fallbacks = {path for method, path in _methods(synth) if method == "ANY"}
    assert fallbacks == {path for _, path in EXPECTED_ROUTES} | {"/", "/{proxy+}"}


def test_bodies_are_validated_as_json_objects(synth: Synthesized) -> None:
    models = {
        m["Properties"]["Name"]: m["Properties"]["Schema"]
        for m in synth.of_type("AWS::ApiGateway::Model").values()
    }
    assert models["CreateMachine"]["type"] == "object"
    assert models["CreateMachine"]["required"] == ["spec"]
    assert models["SendEvent"]["required"] == ["event"]
    methods = _methods(synth)
    assert "application/json" in methods[("POST", "/machines")]["RequestModels"]
    assert "application/json" in methods[("POST", "/machines/{id}/events")]["RequestModels"]


def test_stage_logs_access_as_json_and_throttles_per_environment(synth: Synthesized) -> None:
    log_id, group = synth.one("AWS::Logs::LogGroup", "HttpAccessLogs")
    assert group["Properties"]["RetentionInDays"] == synth.settings.log_retention_days
    throttling = synth.settings.api_throttling
    synth.template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": {"Fn::GetAtt": [log_id, "Arn"]},
                "Format": Match.string_like_regexp(r'^\{"requestId":"\$context\.requestId"'),
            },
            "MethodSettings": [
                {
                    "DataTraceEnabled": False,
                    "HttpMethod": "*",
                    "LoggingLevel": "INFO",
                    "MetricsEnabled": True,
                    "ResourcePath": "/*",
                    "ThrottlingBurstLimit": throttling.burst_limit,
                    "ThrottlingRateLimit": throttling.rate_limit,
                }
            ],
        },
    )
    _, stage = synth.one("AWS::ApiGateway::Stage")
    access_format = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    assert {"caller", "user", "status", "httpMethod", "resourcePath"} <= set(access_format)


def test_gateway_refusals_answer_in_the_apis_error_shape(synth: Synthesized) -> None:
    samples = {
        "$context.error.messageString": json.dumps("Missing Authentication Token"),
        '"$util.escapeJavaScript($context.error.validationErrorString)'
        '.replaceAll("\\\\\'","\'")"': json.dumps(
            '[object has missing required properties (["spec"])]'
        ),
    }
    codes = {}
    for response in synth.of_type("AWS::ApiGateway::GatewayResponse").values():
        props = response["Properties"]
        body = props["ResponseTemplates"]["application/json"]
        for placeholder, sample in samples.items():
            body = body.replace(placeholder, sample)
        parsed = json.loads(body)
        assert set(parsed) == {"error"} and set(parsed["error"]) == {"code", "message"}
        codes[props["ResponseType"]] = parsed["error"]["code"]
    assert codes["BAD_REQUEST_BODY"] == codes["BAD_REQUEST_PARAMETERS"] == "invalid_request"
    assert codes["REQUEST_TOO_LARGE"] == "payload_too_large"
    assert {"ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        codes
    )


def test_one_invoke_permission_for_the_api(synth: Synthesized) -> None:
    api_id, _ = synth.one("AWS::ApiGateway::RestApi")
    dispatcher_id, _ = synth.one("AWS::Lambda::Function", "DispatchDispatcher")
    from_api = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(from_api) == 1
    assert from_api[0]["FunctionName"] == {"Fn::GetAtt": [dispatcher_id, "Arn"]}
    assert api_id in json.dumps(from_api[0]["SourceArn"])
