"""The HTTP API option (cdk.json ``api.type: http``): API Gateway's HTTP API with the routes
of docs/api.md#routes, each IAM (SigV4) authorized and sent to the dispatcher as payload
format 2.0 events, JSON access logs and stage throttling — the REST API's counterpart
(infra/api.py) at a lower price per request.

What it cannot do like the REST API (docs/deploy.md, "The HTTP API option"): an HTTP API
has no gateway responses, so the refusals API Gateway answers itself (unsigned, denied,
throttled, too large) keep API Gateway's own ``{"message": ...}`` body instead of the
API's error shape, and it validates no body (the dispatcher does, answering the same 400s
with its own messages)."""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_authorizers import HttpIamAuthorizer
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from infra.api import ROUTES, STAGE
from infra.function import log_group
from infra.settings import EnvironmentSettings

# One JSON object per request; every value is one API Gateway substitutes as it is
# (identifiers, numbers, ARNs, the route key), so each line stays JSON.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "userArn": "$context.identity.userArn",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integrationStatus",
    "errorType": "$context.error.responseType",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """The stage's access log settings (HttpStage takes them as an interface)."""

    def __init__(self, destination: apigwv2.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS))


class ControlPlaneHttpApi(Construct):
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
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"statewright-{env_name}",
            description=f"Statewright {env_name} control plane (SigV4-signed requests only)",
            # The stage is v1, as the REST API's, so an endpoint reads the same either way.
            create_default_stage=False,
        )
        throttling = settings.api_throttling
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name=STAGE,
            auto_deploy=True,
            access_log_settings=_AccessLogs(apigwv2.LogGroupLogDestination(self.access_logs)),
            detailed_metrics_enabled=settings.api_detailed_metrics,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=throttling.rate_limit, burst_limit=throttling.burst_limit
            ),
        )
        # One invoke permission for the whole API instead of one per route.
        integration = HttpLambdaIntegration(
            "Dispatcher",
            dispatcher,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            scope_permission_to_route=False,
        )
        iam_auth = HttpIamAuthorizer()
        for route in ROUTES:
            self.api.add_routes(
                path=route.path,
                methods=[apigwv2.HttpMethod(route.method)],
                integration=integration,
                authorizer=iam_auth,
            )
        # Everything else reaches the dispatcher too (still SigV4-only), so the API
        # answers as it does locally: 405 with Allow, or 404 — never API Gateway's own.
        apigwv2.HttpRoute(
            self,
            "Default",
            http_api=self.api,
            route_key=apigwv2.HttpRouteKey.DEFAULT,
            integration=integration,
            authorizer=iam_auth,
        )
        self.endpoint = cdk.CfnOutput(
            scope,
            "ApiEndpoint",
            value=f"{self.api.api_endpoint}/{STAGE}/",
            description="Statewright API endpoint: statewright machines ... --endpoint <this>",
        )
