"""The REST API: the routes of docs/api.md#routes, each IAM (SigV4) authorized and proxied to
the dispatcher, with request validation, JSON access logs and throttling. API Gateway's
own refusals answer in the API's error shape ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.function import log_group, log_retention
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
SET_TTL = apigw.JsonSchema(
    schema=apigw.JsonSchemaVersion.DRAFT4,
    title="SetTtl",
    type=_OBJECT,
    required=["ttl"],
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
    Route("POST", "/machines/{id}/ttl", body=SET_TTL, headers=IDEMPOTENCY),
)

# API Gateway's own refusals, re-worded into the API's error shape. A gateway response's
# template is not VTL: API Gateway only substitutes $context.* and $stageVariables.*
# values, as they are, into the text ($util... stays literal), and
# $context.error.messageString is the message between double quotes without any escaping.
# A message holding a quote or a line break (an invalid signature's message has both)
# would not be JSON, so the messages are fixed text; only $context.requestId (letters,
# digits and '-') and $context.error.responseType (an upper-case name) are substituted.
REQUEST_ID = "$context.requestId"
_BODY_SHAPES = (
    'POST /machines takes a JSON object with "spec", '
    'POST /machines/{id}/events a JSON object with "event", '
    'POST /machines/{id}/ttl a JSON object with "ttl"'
)
GATEWAY_ERRORS: dict[str, tuple[str, str]] = {
    "BAD_REQUEST_BODY": (
        "invalid_request",
        f"the request body does not match this route: {_BODY_SHAPES}",
    ),
    "BAD_REQUEST_PARAMETERS": (
        "invalid_request",
        "a path parameter of this route is missing or empty",
    ),
    "REQUEST_TOO_LARGE": (
        "payload_too_large",
        "the request is larger than API Gateway accepts (10 MB)",
    ),
    "THROTTLED": (
        "throttled",
        "too many requests for this stage's rate limit; retry with backoff",
    ),
    "ACCESS_DENIED": (
        "forbidden",
        "the signing identity is not allowed execute-api:Invoke on this route",
    ),
    "MISSING_AUTHENTICATION_TOKEN": (
        "unauthenticated",
        "the request is not signed: sign it with AWS Signature Version 4 "
        "(the statewright CLI does for an execute-api endpoint)",
    ),
    "INVALID_SIGNATURE": (
        "unauthenticated",
        "the request's SigV4 signature does not match: check the credentials, the "
        "region and the signed headers",
    ),
    "EXPIRED_TOKEN": (
        "unauthenticated",
        "the request's credentials or signature have expired: refresh them and sign again",
    ),
    "DEFAULT_4XX": (
        "request_refused",
        "API Gateway refused the request ($context.error.responseType)",
    ),
    "DEFAULT_5XX": (
        "unavailable",
        "API Gateway could not process the request ($context.error.responseType); retry later",
    ),
}


def gateway_error_template(code: str, message: str) -> str:
    """The JSON body of one gateway response, with the request id to quote to an
    operator (it is in the access log)."""
    return json.dumps({"error": {"code": code, "message": f"{message} (request {REQUEST_ID})"}})


_LOG_LEVELS = {
    "off": apigw.MethodLoggingLevel.OFF,
    "errors": apigw.MethodLoggingLevel.ERROR,
    "info": apigw.MethodLoggingLevel.INFO,
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
        self.access_logs = log_group(self, "AccessLogs", settings)
        throttling = settings.api_throttling
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"statewright-{env_name}",
            description=f"Statewright {env_name} control plane (SigV4-signed requests only)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # AWS::ApiGateway::Account is one per account and region: two stacks that
            # both set it overwrite each other's role, so it is opt-in (cdk.json). The
            # role stays when the stack goes, since other APIs may rely on it.
            cloud_watch_role=settings.api_gateway_account_role,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN
            if settings.api_gateway_account_role
            else None,
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
                # Never bodies (data trace): metadata may be sensitive.
                logging_level=_LOG_LEVELS[settings.api_execution_logs],
                data_trace_enabled=False,
                metrics_enabled=settings.api_detailed_metrics,
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
        for response_type, (code, message) in GATEWAY_ERRORS.items():
            self.api.add_gateway_response(
                f"{response_type}Response",
                type=apigw.ResponseType.of(response_type),
                templates={"application/json": gateway_error_template(code, message)},
            )
        if settings.api_execution_logs != "off":
            self._retain_execution_logs(settings)
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
        if settings.api_gateway_account_role:
            acknowledge(
                self.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-wide CloudWatch role needs exactly this AWS-maintained "
                "service policy to write execution logs.",
            )
        if settings.api_execution_logs == "off":
            acknowledge(
                self.api,
                "AwsSolutions-APIG6",
                "Execution logs need the account-wide API Gateway CloudWatch role, which one "
                "environment must not take over from another; they are opt-in in cdk.json "
                "(api_execution_logs). Every request is still in the JSON access log.",
            )

    def _retain_execution_logs(self, settings: EnvironmentSettings) -> None:
        """API Gateway writes execution logs to API-Gateway-Execution-Logs_<api id>/<stage>
        and, left alone, creates that group itself with no retention. Created here first
        (the stage waits for it), it expires like every other log of the control plane;
        the API's id is new with every create, so a retained group never collides."""
        group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{STAGE}",
            retention=log_retention(settings),
            removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
            if settings.retain
            else cdk.RemovalPolicy.DESTROY,
        )
        self.api.deployment_stage.node.add_dependency(group)
