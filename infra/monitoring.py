"""Watching the running service: CloudWatch alarms -> an SNS topic, and one dashboard.

The function writes its own metrics in CloudWatch's embedded metric format (Powertools;
function/emotion/logs.py) under METRICS_NAMESPACE: Requests, Latency and Errors by route, Errors
by `error` code, Faces per photo. The alarms use the services' own metrics, which exist even
when the function cannot start.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

METRICS_NAMESPACE = "EmotionEvaluator"  # the function's POWERTOOLS_METRICS_NAMESPACE
SERVICE = "emotion"  # POWERTOOLS_SERVICE_NAME: Powertools adds it as a metric dimension
PERIOD = Duration.minutes(5)

# Alarm thresholds (infra/README.md explains each).
SERVER_ERROR_RATE_PERCENT = 5  # API 5xx over all API requests, per 5 minutes
P99_DURATION_MS = 1000  # a warm /face takes tens of ms; a second means trouble
MIN_REQUESTS_FOR_RATE = 20  # below this many requests in 5 minutes the rate is noise
# Throttled answers (429, from the stage's limits) in 5 minutes: one page backing off sends at
# most ~40 (0.5 s doubling to 8 s), so this many means people are being turned away.
THROTTLED_PER_5_MIN = 100


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        api: apigwv2.HttpApi,
        stage: apigwv2.HttpStage,
        api_logs: logs.ILogGroup,
        timeout: Duration,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name="Emotion evaluator alarms", enforce_ssl=True
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        dims = {"ApiId": api.api_id, "Stage": stage.stage_name}

        def api_metric(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map=dims,
                statistic=statistic,
                period=PERIOD,
            )

        requests = api_metric("Count")
        server_errors = api_metric("5xx")
        client_errors = api_metric("4xx")
        # Only rate when there is traffic to speak of: two 5xx out of three are not an outage.
        error_rate = cloudwatch.MathExpression(
            expression=f"IF(requests >= {MIN_REQUESTS_FOR_RATE}, 100 * errors / requests, 0)",
            using_metrics={"errors": server_errors, "requests": requests},
            label="5xx rate (%)",
            period=PERIOD,
        )
        duration_p99 = function.metric_duration(statistic="p99", period=PERIOD)
        throttles = function.metric_throttles(statistic="Sum", period=PERIOD)
        errors = function.metric_errors(statistic="Sum", period=PERIOD)
        # HTTP APIs publish no 429 count: count them from the stage's access log.
        throttled = logs.MetricFilter(
            self,
            "Throttled429",
            log_group=api_logs,
            filter_pattern=logs.FilterPattern.string_value("$.status", "=", "429"),
            metric_namespace=METRICS_NAMESPACE,
            metric_name="ApiThrottled",
            metric_value="1",
            default_value=0,
        ).metric(statistic="Sum", period=PERIOD)

        self.alarms = [
            cloudwatch.Alarm(
                self,
                "ServerErrorRate",
                alarm_description=(
                    f"More than {SERVER_ERROR_RATE_PERCENT}% of API requests got a 5xx in 5 "
                    "minutes (function errors, timeouts, or a broken deployment)."
                ),
                metric=error_rate,
                threshold=SERVER_ERROR_RATE_PERCENT,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "DurationP99",
                alarm_description=(
                    f"p99 function duration over {P99_DURATION_MS} ms for 15 minutes "
                    f"(timeout {timeout.to_seconds()} s): too little memory/CPU, or a slow model."
                ),
                metric=duration_p99,
                threshold=P99_DURATION_MS,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "Throttles",
                alarm_description=(
                    "Lambda throttled invocations: the account's concurrency quota (or the "
                    "reserved concurrency) is too small for the traffic (infra/README.md)."
                ),
                metric=throttles,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "ApiThrottled",
                alarm_description=(
                    f"Over {THROTTLED_PER_5_MIN} API answers were 429 (stage or /faces throttle) "
                    "in 5 minutes: raise concurrentViewers if the traffic is wanted."
                ),
                metric=throttled,
                threshold=THROTTLED_PER_5_MIN,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "FunctionErrors",
                alarm_description=(
                    "Lambda invocation errors (crashes, timeouts, out of memory); client "
                    "mistakes are 4xx answers and never count here."
                ),
                metric=errors,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
            alarm.add_ok_action(actions.SnsAction(self.topic))

        def own(name: str, statistic: str, label: str) -> cloudwatch.MathExpression:
            """The function's EMF metric across all its dimension values (SEARCH)."""
            query = f'{{{METRICS_NAMESPACE},service,route}} MetricName="{name}"'
            return cloudwatch.MathExpression(
                expression=f"SEARCH('{query}', '{statistic}', 300)",
                using_metrics={},
                label=label,
                period=PERIOD,
            )

        errors_by_code = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{METRICS_NAMESPACE},error,route,service}} "
                f"MetricName=\"Errors\"', 'Sum', 300)"
            ),
            using_metrics={},
            label="errors by code",
            period=PERIOD,
        )
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=Duration.hours(3),
            widgets=[
                [
                    cloudwatch.AlarmStatusWidget(
                        title="Alarms", alarms=self.alarms, width=24, height=3
                    )
                ],
                [
                    cloudwatch.GraphWidget(
                        title="API requests and errors (per 5 min)",
                        left=[requests, client_errors, server_errors, throttled],
                        right=[error_rate],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Function duration (ms)",
                        left=[
                            function.metric_duration(statistic="p50", period=PERIOD),
                            duration_p99,
                            api_metric("IntegrationLatency", "p99"),
                        ],
                        width=12,
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Lambda invocations, errors, throttles, concurrency",
                        left=[function.metric_invocations(period=PERIOD), errors, throttles],
                        right=[
                            function.metric(
                                "ConcurrentExecutions", statistic="Maximum", period=PERIOD
                            )
                        ],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Requests and latency by route (the function's own metrics)",
                        left=[own("Requests", "Sum", "requests")],
                        right=[own("Latency", "p99", "p99 latency")],
                        width=12,
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Client and server errors by error code",
                        left=[errors_by_code],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Faces per photo (POST /faces)",
                        left=[own("Faces", "Average", "faces per photo")],
                        width=12,
                    ),
                ],
            ],
        )
