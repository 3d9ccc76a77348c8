"""The REST API: the routes of docs/api.md#routes, each IAM-authorized, validated and proxied to the
dispatcher; JSON access logs, throttling from cdk.json, errors in the API's shape (as API
Gateway really renders its gateway responses), no account-wide singletons."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized, api_invoke_permissions
from tests.infra.gateway_responses import UnknownVariableError, context_for, render

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
    ("POST", "/machines/{id}/ttl"),
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
    assert models["SetTtl"]["required"] == ["ttl"]
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
                    # Execution logs and per-method metrics are opt-in (cdk.json).
                    "LoggingLevel": "OFF",
                    "MetricsEnabled": False,
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


# What API Gateway's own messages can hold: an invalid signature's message spans lines
# and quotes the canonical request; a validation error quotes the missing property.
HOSTILE_MESSAGES = (
    'object has missing required properties (["spec"])',
    "The request signature we calculated does not match the signature you provided.\n\n"
    "The Canonical String for this request should have been\n'POST\n/v1/machines'",
    'back\\slash and a "quote" \\" and a tab\t',
)


@pytest.mark.parametrize("message", HOSTILE_MESSAGES, ids=("validation", "signature", "escapes"))
def test_gateway_refusals_render_as_json_in_the_apis_error_shape(
    synth: Synthesized, message: str
) -> None:
    codes = {}
    for response in synth.of_type("AWS::ApiGateway::GatewayResponse").values():
        props = response["Properties"]
        rendered = render(props["ResponseTemplates"]["application/json"], context_for(message))
        parsed = json.loads(rendered)
        assert set(parsed) == {"error"} and set(parsed["error"]) == {"code", "message"}
        assert isinstance(parsed["error"]["message"], str) and parsed["error"]["message"]
        codes[props["ResponseType"]] = parsed["error"]["code"]
    assert codes["BAD_REQUEST_BODY"] == codes["BAD_REQUEST_PARAMETERS"] == "invalid_request"
    assert codes["REQUEST_TOO_LARGE"] == "payload_too_large"
    assert codes["MISSING_AUTHENTICATION_TOKEN"] == codes["INVALID_SIGNATURE"] == "unauthenticated"
    assert codes["ACCESS_DENIED"] == "forbidden"
    assert {"THROTTLED", "EXPIRED_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(codes)


def test_gateway_refusals_name_the_request_for_the_access_log(synth: Synthesized) -> None:
    context = context_for("whatever")
    for response in synth.of_type("AWS::ApiGateway::GatewayResponse").values():
        body = json.loads(
            render(response["Properties"]["ResponseTemplates"]["application/json"], context)
        )
        assert context["requestId"] in body["error"]["message"]


def test_the_renderer_substitutes_variables_only_as_api_gateway_does() -> None:
    context = context_for('a "quoted" word')
    template = (
        '{"m": $context.error.messageString, "v": "$util.escapeJavaScript($context.error.message)"}'
    )
    assert render(template, context) == (
        '{"m": "a "quoted" word", "v": "$util.escapeJavaScript(a "quoted" word)"}'
    )
    assert render("id $context.requestId.", context) == f"id {context['requestId']}."
    assert render("$stageVariables.colour", context, {"colour": "blue"}) == "blue"
    with pytest.raises(UnknownVariableError):
        render("$context.identity.sourceIp", context)


def test_no_account_wide_api_gateway_settings_by_default(synth: Synthesized) -> None:
    # AWS::ApiGateway::Account is one per account and region: a second environment in the
    # same account would overwrite the first one's role.
    assert synth.settings.api_gateway_account_role is False
    assert not synth.of_type("AWS::ApiGateway::Account")
    assert not [k for k in synth.of_type("AWS::IAM::Role") if "CloudWatchRole" in k]


def test_one_invoke_permission_for_the_api(synth: Synthesized) -> None:
    api_id, _ = synth.one("AWS::ApiGateway::RestApi")
    dispatcher_id, _ = synth.one("AWS::Lambda::Function", "DispatchDispatcher")
    from_api = api_invoke_permissions(synth)
    assert len(from_api) == 1
    assert from_api[0]["FunctionName"] == {"Fn::GetAtt": [dispatcher_id, "Arn"]}
    assert api_id in json.dumps(from_api[0]["SourceArn"])
