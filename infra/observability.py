"""Alarms (function errors and throttles, dead-letter queue depth, API 5xx) published to an
encrypted SNS topic, and one dashboard for the whole control plane."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import METRICS_NAMESPACE
from infra.settings import EnvironmentSettings

PERIOD = cdk.Duration.minutes(5)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: EnvironmentSettings,
        functions: Mapping[str, lambda_.IFunction],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        api: apigw.RestApi | apigwv2.HttpApi,
        table: dynamodb.ITable,
        terraform_project_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch can publish to an encrypted topic only with a customer-managed key
        # whose policy lets CloudWatch use it.
        self.key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Statewright {env_name}: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN
            if settings.retain
            else cdk.RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"statewright-{env_name}-alarms",
            display_name=f"Statewright {env_name} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        # enforce_ssl gives the topic a policy of its own, which replaces SNS's default
        # (the account may publish): without this statement no alarm could publish.
        # Scoped to this account's alarms (confused-deputy protection).
        stack = cdk.Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        cdk.CfnOutput(
            scope,
            "AlarmTopicArn",
            value=self.topic.topic_arn,
            description="Subscribe here to be told when the control plane misbehaves",
        )

        self.alarms: list[cloudwatch.Alarm] = []
        for name, function in functions.items():
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                f"{name} raised errors (a failed invocation: see its log group)",
            )
            self._alarm(
                f"{name}Throttles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                f"{name} was throttled (account or function concurrency exhausted)",
            )
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}Depth",
                queue.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum"
                ),
                f"{name} holds messages that were not processed; inspect and redrive them",
            )
        self._alarm(
            "Api5xx",
            api.metric_server_error(period=PERIOD, statistic="Sum"),
            "The API answered 5xx (the dispatcher failed or timed out)",
        )

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"statewright-{env_name}"
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4)
        )
        self.dashboard.add_widgets(
            _graph(
                "API requests and errors",
                [
                    api.metric_count(period=PERIOD),
                    api.metric_client_error(period=PERIOD),
                    api.metric_server_error(period=PERIOD),
                ],
            ),
            _graph("API latency (p99)", [api.metric_latency(period=PERIOD, statistic="p99")]),
        )
        self.dashboard.add_widgets(
            _graph(
                "Invocations", [f.metric_invocations(period=PERIOD) for f in functions.values()]
            ),
            _graph(
                "Errors and throttles",
                [f.metric_errors(period=PERIOD) for f in functions.values()]
                + [f.metric_throttles(period=PERIOD) for f in functions.values()],
            ),
            _graph(
                "Duration (p99)",
                [f.metric_duration(period=PERIOD, statistic="p99") for f in functions.values()],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "Dead-letter queues",
                [
                    q.metric_approximate_number_of_messages_visible(period=PERIOD)
                    for q in dead_letter_queues.values()
                ],
            ),
            _graph(
                "Table: consumed capacity",
                [
                    table.metric_consumed_read_capacity_units(period=PERIOD),
                    table.metric_consumed_write_capacity_units(period=PERIOD),
                ],
            ),
            _graph(
                "Terraform builds",
                [
                    cloudwatch.Metric(
                        namespace="AWS/CodeBuild",
                        metric_name=metric,
                        dimensions_map={"ProjectName": terraform_project_name},
                        statistic="Sum",
                        period=PERIOD,
                    )
                    for metric in ("Builds", "SucceededBuilds", "FailedBuilds")
                ],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "Control plane metrics (conflicts, stale events, task failures, transitions)",
                [
                    cloudwatch.MathExpression(
                        expression=f"SEARCH('{{{METRICS_NAMESPACE},service}}', 'Sum', 300)",
                        label="",
                        using_metrics={},
                        period=PERIOD,
                    )
                ],
                width=24,
            )
        )

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(alarm)


def _graph(
    title: str, metrics: Sequence[cloudwatch.IMetric], *, width: int = 8
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(metrics), width=width, height=6)
