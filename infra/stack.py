"""The whole deployment in one stack.

    viewer --HTTPS--> CloudFront --+-- default: private S3 bucket (Origin Access Control)
                                   +-- /face, /health: HTTP API --> container-image Lambda

One public origin: HTTPS everywhere (the camera needs it) and no CORS. The response-headers
policy comes from site/headers.json, the file the local server sends too.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.config import Config
from infra.headers import HEADERS_FILE, REPO_ROOT, load_headers, response_headers

SITE_DIR = REPO_ROOT / "build" / "site"
DOCKERFILE = "function/Dockerfile"  # relative to the build context, the repository root
API_PATHS = {"/face": "POST", "/health": "GET"}

# Appended to .dockerignore's patterns when the CDK stages the build context (synth), so also
# applied at deploy. The first ones are never sent whatever .dockerignore says: big, and none of
# the image's business (the CDK also leaves out its own output folder). The last one keeps the
# Dockerfile itself: docker always reads it, but the CDK stages only what is not ignored, and
# `cdk deploy` builds from the staged copy.
IMAGE_EXCLUDE = [
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    "build",
    "runs",
    "artifacts",
    "bench/results",
    ".pytest_cache",
    ".ruff_cache",
    "**/__pycache__",
    f"!{DOCKERFILE}",
]
# Build leftovers and the header file (CloudFront sends those headers) stay out of the bucket.
SITE_EXCLUDE = [".built", "headers.json"]

_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip

# One line of JSON per request in the API's access log.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "time": "$context.requestTime",
        "ip": "$context.identity.sourceIp",
        "route": "$context.routeKey",
        "status": "$context.status",
        "latencyMs": "$context.responseLatency",
        "integrationMs": "$context.integrationLatency",
        "bytes": "$context.responseLength",
        "error": "$context.integrationErrorMessage",
    },
    separators=(",", ":"),
)


class SiteMissing(FileNotFoundError):
    pass


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
        site_dir = Path(site_dir)
        if not (site_dir / "index.html").is_file():
            raise SiteMissing(f"{site_dir}/index.html is missing: run `make site` first")
        destroy = config.removal_policy == "destroy"
        removal = RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN
        retention = getattr(logs.RetentionDays, _RETENTION[config.log_retention_days])

        # --- the function -------------------------------------------------------------------
        arm = config.architecture == "arm64"
        function_logs = logs.LogGroup(
            self, "FunctionLogs", retention=retention, removal_policy=removal
        )
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The emotion API function: writes its own log group, nothing else.",
        )
        function_logs.grant_write(role)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT),
                file=DOCKERFILE,
                platform=(
                    ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64
                ),
                exclude=IMAGE_EXCLUDE,
            ),
            architecture=lambda_.Architecture.ARM_64 if arm else lambda_.Architecture.X86_64,
            memory_size=config.memory_size,
            timeout=Duration.seconds(config.timeout_seconds),
            reserved_concurrent_executions=config.reserved_concurrency,
            log_group=function_logs,
            role=role,
            description="Real-time emotion evaluator: POST /face, GET /health",
        )

        # --- the API: exactly two routes, throttled --------------------------------------------
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description="Real-time emotion evaluator API (served through CloudFront)",
            create_default_stage=False,
        )
        integration = integrations.HttpLambdaIntegration("Function", self.function)
        for path, method in API_PATHS.items():
            self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod(method)], integration=integration
            )
        api_logs = logs.LogGroup(self, "ApiAccessLogs", retention=retention, removal_policy=removal)
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
        )
        cfn_stage = self.stage.node.default_child
        cfn_stage.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=api_logs.log_group_arn, format=ACCESS_LOG_FORMAT
        )

        # --- the page's bucket: private, encrypted, TLS only -----------------------------------
        self.bucket = s3.Bucket(
            self,
            "SiteBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            auto_delete_objects=destroy,
        )

        # --- CloudFront: the single public origin ----------------------------------------------
        security, custom = response_headers(load_headers(headers_file))
        self.headers_policy = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Security headers from site/headers.json (the local server sends the same)",
            security_headers_behavior=security,
            custom_headers_behavior=custom if custom.custom_headers else None,
        )
        api_origin = origins.HttpOrigin(
            f"{self.api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )
        api_behavior = cloudfront.BehaviorOptions(
            origin=api_origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=self.headers_policy,
            compress=True,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Real-time emotion evaluator: page + API on one origin",
            default_root_object="index.html",
            price_class=getattr(
                cloudfront.PriceClass,
                {"100": "PRICE_CLASS_100", "200": "PRICE_CLASS_200", "All": "PRICE_CLASS_ALL"}[
                    config.price_class
                ],
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers_policy,
                compress=True,
            ),
            additional_behaviors={path: api_behavior for path in API_PATHS},
        )

        # --- the page's files, then an invalidation so viewers get them at once ---------------
        s3deploy.BucketDeployment(
            self,
            "SiteDeployment",
            sources=[s3deploy.Source.asset(str(site_dir), exclude=SITE_EXCLUDE)],
            destination_bucket=self.bucket,
            exclude=SITE_EXCLUDE,
            distribution=self.distribution,
            distribution_paths=["/*"],
            log_group=logs.LogGroup(
                self, "SiteDeploymentLogs", retention=retention, removal_policy=removal
            ),
        )

        CfnOutput(
            self,
            "SiteUrl",
            value=f"https://{self.distribution.distribution_domain_name}/",
            description="The page and the API (same origin): open this",
        )
        CfnOutput(
            self,
            "ApiUrl",
            value=self.stage.url,
            description="The HTTP API's own endpoint (the page uses the site URL)",
        )
        CfnOutput(self, "DistributionId", value=self.distribution.distribution_id)
        CfnOutput(self, "BucketName", value=self.bucket.bucket_name)

        self._suppress_nag_findings()

    def _suppress_nag_findings(self) -> None:
        """Each accepted AwsSolutions finding, with the reason it is accepted here."""

        def accept(construct: Construct, rule: str, reason: str, applies_to=None) -> None:
            NagSuppressions.add_resource_suppressions(
                construct,
                [NagPackSuppression(id=rule, reason=reason, applies_to=applies_to)],
                apply_to_children=True,
            )

        accept(
            self.bucket,
            "AwsSolutions-S1",
            "Only CloudFront reads this bucket (Origin Access Control, all public access "
            "blocked), and it holds a few static files the stack itself writes. Server access "
            "logs would need a second bucket and record nothing CloudFront's metrics don't.",
        )
        accept(
            self.distribution,
            "AwsSolutions-CFR3",
            "Viewer traffic to the API is logged per request in the API's access log group; "
            "the static page needs no per-request log. CloudFront standard logging needs an "
            "ACL-enabled log bucket; add one if edge logs are wanted (infra/README.md).",
        )
        accept(
            self.distribution,
            "AwsSolutions-CFR4",
            "The distribution uses the default *.cloudfront.net certificate, for which "
            "CloudFront fixes the minimum viewer TLS version; a stricter policy needs a custom "
            "domain and an ACM certificate, which this stack does not require.",
        )
        accept(
            self.distribution,
            "AwsSolutions-CFR1",
            "The page is meant for everyone; there is no country to restrict.",
        )
        accept(
            self.distribution,
            "AwsSolutions-CFR2",
            "No WAF web ACL: it costs a fixed monthly fee per ACL plus per request. Abuse is "
            "bounded by the API stage's throttling and the function's reserved concurrency.",
        )
        accept(
            self.api,
            "AwsSolutions-APIG4",
            "A public, anonymous API by design: the page calls it with no login. It keeps no "
            "data and is bounded by stage throttling and the function's reserved concurrency.",
        )
        # The CDK's own BucketDeployment handler (a singleton at stack level).
        for child in self.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                accept(
                    child,
                    "AwsSolutions-L1",
                    "The CDK's BucketDeployment handler: aws-cdk-lib chooses and pins its "
                    "runtime; it runs only during deployments.",
                )
                accept(
                    child,
                    "AwsSolutions-IAM4",
                    "The CDK's BucketDeployment handler uses AWSLambdaBasicExecutionRole to "
                    "write its logs.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AWSLambdaBasicExecutionRole"
                    ],
                )
                accept(
                    child,
                    "AwsSolutions-IAM5",
                    "The CDK's BucketDeployment grants: read the staged site zip in the CDK "
                    "assets bucket, write and prune objects under the site bucket, and create "
                    "CloudFront invalidations (which take no resource ARN scoping).",
                    applies_to=[
                        "Action::s3:GetObject*",
                        "Action::s3:GetBucket*",
                        "Action::s3:List*",
                        "Action::s3:DeleteObject*",
                        "Action::s3:Abort*",
                        "Resource::arn:<AWS::Partition>:s3:::"
                        "cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
                        f"Resource::<{self.get_logical_id(self.bucket.node.default_child)}.Arn>/*",
                        "Resource::*",
                    ],
                )
