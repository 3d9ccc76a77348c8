"""The REST API: the routes of docs/api.md#routes, each IAM (SigV4) authorized and proxied to
the dispatcher, with request validation, JSON access logs and throttling. API Gateway's
own refusals answer in the API's error shape ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.function import log_retention, removal_policy
from infra.nag import acknowledge
from infra.settings import EnvironmentSettings

STAGE = "v1"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    query: tuple[str, ...] = ()
    body: apigw.JsonSchema | None = None
    headers: tuple[str, ...] = field(default=())


_OBJECT = apigw.JsonSchemaType.OBJECT
_STRING = apigw.JsonSchemaType.STRING
CREATE_MACHINE = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="CreateMachine",
    type=_OBJECT,
    required=["spec"],
)
SEND_EVENT = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="SendEvent",
    type=_OBJECT,
    required=["event"],
)
IDEMPOTENCY = ("Idempotency-Key",)
ROUTES = (
    Route("GET", "/openapi.json"),
    Route("GET", "/specs"),
    Route("GET", "/specs/{name}"),
    Route("GET", "/machines", query=("spec", "state", "limit", "next_token")),
    Route("POST", "/machines", body=CREATE_MACHINE, headers=IDEMPOTENCY),
    Route("GET", "/machines/{id}"),
    Route("POST", "/machines/{id}/events", body=SEND_EVENT, headers=IDEMPOTENCY),
    Route("GET", "/machines/{id}/history", query=("limit", "next_token")),
    Route("POST", "/machines/{id}/retry", headers=IDEMPOTENCY),
)

# API Gateway's own refusals, re-worded into the API's error shape.
# $context.error.messageString is already a quoted JSON string; the validation detail is
# escaped the way AWS documents for JSON (escapeJavaScript, then un-escape single quotes).
_VALIDATION_DETAIL = (
    '"$util.escapeJavaScript($context.error.validationErrorString).replaceAll("\\\\\'","\'")"'
)
_MESSAGE = "$context.error.messageString"
_GATEWAY_ERRORS = {
    apigw.ResponseType.BAD_REQUEST_BODY: ("invalid_request", _VALIDATION_DETAIL),
    apigw.ResponseType.BAD_REQUEST_PARAMETERS: ("invalid_request", _VALIDATION_DETAIL),
    apigw.ResponseType.REQUEST_TOO_LARGE: ("payload_too_large", _MESSAGE),
    apigw.ResponseType.THROTTLED: ("throttled", _MESSAGE),
    apigw.ResponseType.ACCESS_DENIED: ("forbidden", _MESSAGE),
    apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN: ("unauthenticated", _MESSAGE),
    apigw.ResponseType.INVALID_SIGNATURE: ("unauthenticated", _MESSAGE),
    apigw.ResponseType.EXPIRED_TOKEN: ("unauthenticated", _MESSAGE),
    apigw.ResponseType.DEFAULT_4_XX: ("request_refused", _MESSAGE),
    apigw.ResponseType.DEFAULT_5_XX: ("unavailable", _MESSAGE),
}


class ControlPlaneApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        dispatcher: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(settings),
            removal_policy=removal_policy(settings),
        )
        throttling = settings.api_throttling
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"statewright-{env_name}",
            description=f"Statewright {env_name} control plane (SigV4-signed requests only)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logs need the account's API Gateway CloudWatch role; it stays when
            # the stack goes, since other APIs in the account may rely on it.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                # Errors and request summaries, never bodies: metadata may be sensitive.
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=throttling.rate_limit,
                throttling_burst_limit=throttling.burst_limit,
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM
            ),
        )
        self.validator = apigw.RequestValidator(
            self,
            "Validator",
            rest_api=self.api,
            request_validator_name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        # One invoke permission for the whole API instead of one per method.
        integration = apigw.LambdaIntegration(dispatcher, scope_permission_to_method=False)
        models: dict[str, apigw.Model] = {}
        for route in ROUTES:
            resource = self.api.root.resource_for_path(route.path)
            parameters = {
                f"method.request.path.{segment[1:-1]}": True
                for segment in route.path.split("/")
                if segment.startswith("{")
            }
            parameters.update({f"method.request.querystring.{q}": False for q in route.query})
            parameters.update({f"method.request.header.{h}": False for h in route.headers})
            request_models = None
            if route.body is not None:
                title = route.body.title or "Body"
                if title not in models:
                    models[title] = self.api.add_model(
                        title, content_type="application/json", model_name=title, schema=route.body
                    )
                request_models = {"application/json": models[title]}
            resource.add_method(
                route.method,
                integration,
                authorization_type=apigw.AuthorizationType.IAM,
                request_validator=self.validator,
                request_parameters=parameters,
                request_models=request_models,
            )
        # Everything else is proxied too (still SigV4-only), so the API answers exactly
        # as it does locally: 405 with Allow for another method on a known path, 404 for
        # an unknown path — instead of API Gateway's "Missing Authentication Token".
        fallbacks: dict[str, apigw.IResource] = {
            route.path: self.api.root.resource_for_path(route.path) for route in ROUTES
        }
        fallbacks["/"] = self.api.root
        fallbacks["/{proxy+}"] = self.api.root.add_resource("{proxy+}")
        for _, fallback in sorted(fallbacks.items()):
            fallback.add_method("ANY", integration, authorization_type=apigw.AuthorizationType.IAM)
        for response_type, (code, message) in _GATEWAY_ERRORS.items():
            self.api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                templates={
                    "application/json": f'{{"error": {{"code": "{code}", "message": {message}}}}}'
                },
            )
        # RestApi adds an unnamed endpoint output of its own; the stack's is ApiEndpoint.
        self.api.node.try_remove_child("Endpoint")
        self.endpoint = cdk.CfnOutput(
            scope,
            "ApiEndpoint",
            value=self.api.url,
            description="Statewright API endpoint: statewright machines ... --endpoint <this>",
        )
        acknowledge(
            self.api,
            "AwsSolutions-APIG3",
            "Every method requires SigV4 (IAM) authorization, so anonymous traffic is refused "
            "before it reaches the integration, and stage throttling bounds signed callers; "
            "a WAF web ACL can be associated by the operator if the account uses one.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "The API's callers are AWS principals (CLIs, pipelines, roles) authorized by IAM "
            "SigV4, as docs/security.md specifies; there is no Cognito user pool by design.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-wide CloudWatch role needs exactly this AWS-maintained "
            "service policy to write execution logs.",
        )
