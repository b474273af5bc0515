"""The whole deployment in one stack, composed of one construct per concern.

    viewer --HTTPS--> CloudFront --+-- default: private S3 bucket (Origin Access Control)
                                   +-- /face, /faces, /health: HTTP API --> container-image Lambda
      (WAF per-client rate rule)         (stage throttle)               (alarms, dashboard)

- protection.py: the origin secret, the per-client WAF rule
- backend.py:    the function and the HTTP API
- frontend.py:   the bucket, CloudFront, the page's files
- monitoring.py: alarms, topic, dashboard

The stack picks what they share (log retention, removal policy, CloudFront's account-global
names), hands each the others' parts it needs, and states the outputs. The constructs make
their resources in this stack's scope, so the logical IDs stay those of the one-class stack it
replaced: a changed ID would make CloudFormation replace the resource (a new bucket, a new
CloudFront address) on the next deploy.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.backend import API_PATHS, Backend
from infra.config import MODEL_FILES, OAC_SUFFIX, Config
from infra.frontend import SITE_DIR, Frontend, require_site
from infra.headers import HEADERS_FILE
from infra.monitoring import METRICS_NAMESPACE, SERVICE, Monitoring
from infra.protection import Protection

_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


class EmotionStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        site_dir: Path = SITE_DIR,
        headers_file: Path = HEADERS_FILE,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        site_dir = require_site(site_dir)  # before the function's image is staged
        removal = (
            RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN
        )
        retention = getattr(logs.RetentionDays, _RETENTION[config.log_retention_days])

        # CloudFront is global: names of its policies, access controls and web ACLs are unique
        # per account, so they carry the region (the same stack may run in two regions).
        def global_name(suffix: str) -> str:
            return Fn.join("-", [self.stack_name, Aws.REGION, suffix])

        self.protection = Protection(
            self,
            "Protection",
            per_client_limit=config.per_client_limit,
            web_acl_name=global_name("per-client"),
        )
        self.backend = Backend(
            self,
            "Backend",
            config=config,
            environment={
                "EMOTION_ORIGIN_SECRET": self.protection.secret_value,
                "EMOTION_MODEL": MODEL_FILES[config.model],
                "POWERTOOLS_SERVICE_NAME": SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            retention=retention,
            removal=removal,
        )
        self.frontend = Frontend(
            self,
            "Frontend",
            config=config,
            http_api=self.backend.http_api,
            api_paths=API_PATHS,
            origin_headers=self.protection.origin_headers,
            web_acl_id=self.protection.web_acl_id,
            headers_policy_name=global_name("headers"),
            oac_name=global_name(OAC_SUFFIX),
            retention=retention,
            removal=removal,
            site_dir=site_dir,
            headers_file=headers_file,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.backend.function,
            api=self.backend.http_api,
            stage=self.backend.stage,
            api_logs=self.backend.api_logs,
            timeout=Duration.seconds(config.timeout_seconds),
            alarm_email=config.alarm_email,
        )
        self._outputs()

    def _outputs(self) -> None:
        distribution = self.frontend.distribution
        CfnOutput(
            self,
            "SiteUrl",
            value=f"https://{distribution.distribution_domain_name}/",
            description="The page and the API (same origin): open this",
        )
        CfnOutput(
            self,
            "ApiUrl",
            value=self.backend.stage.url,
            description="The HTTP API's own endpoint: it refuses direct calls (403); use SiteUrl",
        )
        CfnOutput(self, "DistributionId", value=distribution.distribution_id)
        CfnOutput(self, "BucketName", value=self.frontend.bucket.bucket_name)
        CfnOutput(
            self,
            "DashboardUrl",
            value=(
                f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
                f"#dashboards:name={self.monitoring.dashboard.dashboard_name}"
            ),
            description="CloudWatch dashboard: traffic, errors by code, latency, alarms",
        )
        CfnOutput(
            self,
            "FunctionLogGroup",
            value=self.backend.function_logs.log_group_name,
            description="The function's JSON log lines and metrics: aws logs tail <this> --follow",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="SNS topic of the alarms: subscribe to it (or deploy with -c alarmEmail=)",
        )
