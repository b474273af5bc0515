"""The whole deployment in one stack.

    viewer --HTTPS--> CloudFront --+-- default: private S3 bucket (Origin Access Control)
                                   +-- /face, /faces, /health: HTTP API --> container-image Lambda
      (WAF per-client rate rule)         (stage throttle)               (alarms, dashboard)

One public origin: HTTPS everywhere (the camera needs it) and no CORS. The response-headers
policy comes from site/headers.json, the file the local server sends too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import Aws, CfnCondition, CfnOutput, Duration, Fn, RemovalPolicy, Stack
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
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.config import MAX_BODY_BYTES, OAC_SUFFIX, Config
from infra.headers import HEADERS_FILE, REPO_ROOT, load_headers, response_headers
from infra.monitoring import METRICS_NAMESPACE, SERVICE, Monitoring

SITE_DIR = REPO_ROOT / "build" / "site"
DOCKERFILE = "function/Dockerfile"  # relative to the build context, the repository root
# Every method goes to the function, which answers a wrong one with its own 405 JSON (an
# HTTP API route with only POST would give API Gateway's bare 404 to GET /face).
API_PATHS = ("/face", "/faces", "/health", "/openapi.json")
# CloudFront adds this header, with a secret made at deploy, to every request it sends to the
# API; the function refuses a request without it (function/emotion/origin.py: HEADER), so the
# API's own execute-api endpoint, public as every HTTP API's is, answers 403.
ORIGIN_HEADER = "x-origin-verify"

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
# Browser caching of the page's files (S3 object metadata). A file whose name carries a hash of
# its content never changes: cache it for a year. Any other file (index.html, js/, vendor/...)
# keeps its name across deploys, so browsers must revalidate it (a cheap 304 by ETag) and never
# run old and new scripts together after a deploy.
HASHED_NAME = re.compile(r"[.-][0-9a-f]{8,}\.[A-Za-z0-9]+$")
CACHE_FOREVER = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"

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
        self.function_logs = function_logs
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The emotion API function: writes its own log group, nothing else.",
        )
        function_logs.grant_write(role)
        # Made by Secrets Manager at deploy; the template holds only a reference to it, which
        # CloudFormation resolves into the function's environment and CloudFront's header.
        self.origin_secret = secretsmanager.Secret(
            self,
            "OriginSecret",
            description="Header value CloudFront adds to API requests; the API refuses others",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        origin_secret = self.origin_secret.secret_value.unsafe_unwrap()
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
            environment={
                # Our 413 comes before Lambda's payload limit (infra/config.py).
                "EMOTION_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                "EMOTION_ORIGIN_SECRET": origin_secret,
                "POWERTOOLS_SERVICE_NAME": SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "LOG_LEVEL": "INFO",
            },
            description="Real-time emotion evaluator: POST /face, POST /faces, GET /health",
        )

        # --- the API: three paths, every method to the function, throttled ---------------------
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description="Real-time emotion evaluator API (served through CloudFront)",
            create_default_stage=False,
        )
        integration = integrations.HttpLambdaIntegration("Function", self.function)
        for path in API_PATHS:
            self.api.add_routes(
                path=path, methods=[apigwv2.HttpMethod.ANY], integration=integration
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
        # A photo costs ~25 face crops (infra/config.py): /faces has its own, lower limit.
        # RouteSettings is an untyped JSON map in CloudFormation: the CDK would write a
        # RouteSettingsProperty's keys in camelCase, which CloudFormation does not read.
        cfn_stage.route_settings = {
            "ANY /faces": {
                "ThrottlingRateLimit": config.faces_rate_limit,
                "ThrottlingBurstLimit": config.faces_burst_limit,
            }
        }
        self.api_logs = api_logs

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
        # CloudFront is global: names of its policies, access controls and web ACLs are unique
        # per account, so they carry the region (the same stack may run in two regions).
        def global_name(suffix: str) -> str:
            return Fn.join("-", [self.stack_name, Aws.REGION, suffix])

        security, custom = response_headers(load_headers(headers_file))
        self.headers_policy = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            response_headers_policy_name=global_name("headers"),
            comment="Security headers from site/headers.json (the local server sends the same)",
            security_headers_behavior=security,
            custom_headers_behavior=custom if custom.custom_headers else None,
        )
        api_origin = origins.HttpOrigin(
            f"{self.api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            custom_headers={ORIGIN_HEADER: origin_secret},
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
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    self.bucket,
                    origin_access_control=cloudfront.S3OriginAccessControl(
                        self, "SiteOac", origin_access_control_name=global_name(OAC_SUFFIX)
                    ),
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers_policy,
                compress=True,
            ),
            additional_behaviors={path: api_behavior for path in API_PATHS},
        )
        self.web_acl = self._per_client_limit(global_name) if config.per_client_limit else None

        # --- the page's files, then an invalidation so viewers get them at once ---------------
        self._deploy_site(site_dir, retention, removal)
        if destroy:
            self._own_auto_delete_logs(retention)

        # --- watching it --------------------------------------------------------------------------
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.function,
            api=self.api,
            stage=self.stage,
            api_logs=self.api_logs,
            timeout=Duration.seconds(config.timeout_seconds),
            alarm_email=config.alarm_email,
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
            description="The HTTP API's own endpoint: it refuses direct calls (403); use SiteUrl",
        )
        CfnOutput(self, "DistributionId", value=self.distribution.distribution_id)
        CfnOutput(self, "BucketName", value=self.bucket.bucket_name)
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
            value=self.function_logs.log_group_name,
            description="The function's JSON log lines and metrics: aws logs tail <this> --follow",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="SNS topic of the alarms: subscribe to it (or deploy with -c alarmEmail=)",
        )

        self._suppress_nag_findings()

    def _per_client_limit(self, global_name) -> wafv2.CfnWebACL:
        """A WAF rate rule per client address on the API paths, answering 429 like the stage
        throttle. CloudFront web ACLs exist only in us-east-1, so the ACL (and its fee) is
        created only when the stack is deployed there (infra/README.md)."""
        in_us_east_1 = CfnCondition(
            self, "InUsEast1", expression=Fn.condition_equals(Aws.REGION, "us-east-1")
        )
        body = json.dumps(
            {
                "error": "rate_limited",
                "detail": "Too many requests from this address; the page retries on its own.",
            }
        )

        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=name,
                sampled_requests_enabled=True,
            )

        acl = wafv2.CfnWebACL(
            self,
            "PerClientLimit",
            name=global_name("per-client"),
            scope="CLOUDFRONT",
            description="Per-client rate limit on the API paths, sized from site/js/rate.js",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("EmotionEvaluatorAcl"),
            custom_response_bodies={
                "rate_limited": wafv2.CfnWebACL.CustomResponseBodyProperty(
                    content=body, content_type="APPLICATION_JSON"
                )
            },
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="api-per-client",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(
                        block=wafv2.CfnWebACL.BlockActionProperty(
                            custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                                response_code=429, custom_response_body_key="rate_limited"
                            )
                        )
                    ),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            evaluation_window_sec=60,
                            limit=self.config.per_client_limit,
                            scope_down_statement=self._api_paths_statement(),
                        )
                    ),
                    visibility_config=visibility("EmotionEvaluatorPerClient"),
                )
            ],
        )
        acl.cfn_options.condition = in_us_east_1
        cfn_distribution = self.distribution.node.default_child
        cfn_distribution.add_property_override(
            "DistributionConfig.WebACLId",
            Fn.condition_if(in_us_east_1.logical_id, acl.attr_arn, Aws.NO_VALUE),
        )
        return acl

    @staticmethod
    def _api_paths_statement() -> wafv2.CfnWebACL.StatementProperty:
        def starts_with(path: str) -> wafv2.CfnWebACL.StatementProperty:
            return wafv2.CfnWebACL.StatementProperty(
                byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                    positional_constraint="STARTS_WITH",
                    search_string=path,
                    text_transformations=[
                        wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                    ],
                )
            )

        # "/face" covers /face and /faces.
        return wafv2.CfnWebACL.StatementProperty(
            or_statement=wafv2.CfnWebACL.OrStatementProperty(
                statements=[starts_with("/face"), starts_with("/health")]
            )
        )

    def _deploy_site(self, site_dir: Path, retention, removal: RemovalPolicy) -> None:
        """One BucketDeployment per Cache-Control value; each leaves the others' files alone
        (its `exclude` also keeps them from being pruned). The last one invalidates CloudFront,
        after every file is in place."""
        files = sorted(
            str(path.relative_to(site_dir))
            for path in site_dir.rglob("*")
            if path.is_file() and path.name not in SITE_EXCLUDE
        )
        hashed = [f for f in files if HASHED_NAME.search(f)]
        classes = [("Hashed", CACHE_FOREVER, hashed)] if hashed else []
        classes.append(("", CACHE_REVALIDATE, [f for f in files if f not in hashed]))
        log_group = logs.LogGroup(
            self, "SiteDeploymentLogs", retention=retention, removal_policy=removal
        )
        previous = None
        for index, (name, cache_control, members) in enumerate(classes):
            others = [f for f in files if f not in members]
            exclude = [*SITE_EXCLUDE, *others]
            last = index == len(classes) - 1
            deployment = s3deploy.BucketDeployment(
                self,
                f"SiteDeployment{name}",
                sources=[s3deploy.Source.asset(str(site_dir), exclude=exclude)],
                destination_bucket=self.bucket,
                exclude=exclude,
                # Content-hashed files (the compact model) go first and stay: pruning them here
                # would delete the model the live manifest still names until the next step
                # uploads the new one. Old ones are a few MB each (infra/README.md).
                prune=name != "Hashed",
                cache_control=[s3deploy.CacheControl.from_string(cache_control)],
                distribution=self.distribution if last else None,
                distribution_paths=["/*"] if last else None,
                log_group=log_group,
            )
            if previous is not None:
                deployment.node.add_dependency(previous)
                # Every deployment makes an AWS CLI layer, but their shared handler (a
                # singleton) uses the first one only: the others would be deployed for nothing.
                deployment.node.try_remove_child("AwsCliLayer")
            previous = deployment

    def _own_auto_delete_logs(self, retention) -> None:
        """The bucket's auto-delete handler (a CDK singleton) would log to a group Lambda makes
        on its own, which outlives the stack. Give it one of ours, deleted with the stack after
        the handler's last run (the custom resource depends on it, so it goes first)."""
        provider = self.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        handler = provider.node.find_child("Handler")
        log_group = logs.LogGroup(
            self, "AutoDeleteLogs", retention=retention, removal_policy=RemovalPolicy.DESTROY
        )
        handler.add_property_override("LoggingConfig", {"LogGroup": log_group.log_group_name})
        for child in self.bucket.node.children:
            if child.node.id == "AutoDeleteObjectsCustomResource":
                child.node.add_dependency(log_group)

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
            "CloudFront web ACLs exist only in us-east-1: there the stack attaches its own "
            "(a per-client rate rule, perClientLimit); in other regions, or with "
            "perClientLimit=none, abuse is bounded by the API stage's throttling.",
        )
        accept(
            self.origin_secret,
            "AwsSolutions-SMG4",
            "The origin header's value: CloudFront and the function read it only at deploy, so "
            "a rotation would need a redeploy; redeploying with a new secret is the rotation "
            "(infra/README.md).",
        )
        accept(
            self.api,
            "AwsSolutions-APIG4",
            "A public, anonymous API by design: the page calls it with no login. It keeps no "
            "data, answers only requests that came through CloudFront (a secret origin header "
            "the function checks) and is bounded by stage throttling and the per-client WAF "
            "rate rule.",
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
