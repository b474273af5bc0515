"""The API: the container-image function behind an HTTP API.

    /face, /faces, /health, /openapi.json (every method) --> HTTP API stage --> Lambda
                                     (throttled, /faces lower; one JSON access-log line a call)

Its resources are made in the stack's scope, not under this construct: their logical IDs date
from when the stack was one class, and a new ID makes CloudFormation replace the resource (a new
API address, new log groups). Give a resource added here later this construct as its scope.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.config import MAX_BODY_BYTES, Config
from infra.headers import REPO_ROOT

DOCKERFILE = "function/Dockerfile"  # relative to the build context, the repository root
# Every method goes to the function, which answers a wrong one with its own 405 JSON (an
# HTTP API route with only POST would give API Gateway's bare 404 to GET /face).
API_PATHS = ("/face", "/faces", "/health", "/openapi.json")

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


class Backend(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        environment: Mapping[str, str],
        retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> None:
        """`environment`: the function's settings that come from the other parts (the origin
        secret, the names its metrics go under)."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        # --- the function -------------------------------------------------------------------
        arm = config.architecture == "arm64"
        self.function_logs = logs.LogGroup(
            stack, "FunctionLogs", retention=retention, removal_policy=removal
        )
        role = iam.Role(
            stack,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The emotion API function: writes its own log group, nothing else.",
        )
        self.function_logs.grant_write(role)
        self.function = lambda_.DockerImageFunction(
            stack,
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
            log_group=self.function_logs,
            role=role,
            environment={
                # Our 413 comes before Lambda's payload limit (infra/config.py).
                "EMOTION_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                **environment,
                "LOG_LEVEL": "INFO",
            },
            description="Real-time emotion evaluator: POST /face, POST /faces, GET /health",
        )

        # --- the API: four paths, every method to the function, throttled --------------------
        self.http_api = apigwv2.HttpApi(
            stack,
            "Api",
            description="Real-time emotion evaluator API (served through CloudFront)",
            create_default_stage=False,
        )
        integration = integrations.HttpLambdaIntegration("Function", self.function)
        for path in API_PATHS:
            self.http_api.add_routes(
                path=path, methods=[apigwv2.HttpMethod.ANY], integration=integration
            )
        self.api_logs = logs.LogGroup(
            stack, "ApiAccessLogs", retention=retention, removal_policy=removal
        )
        self.stage = apigwv2.HttpStage(
            stack,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
        )
        cfn_stage = self.stage.node.default_child
        cfn_stage.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.api_logs.log_group_arn, format=ACCESS_LOG_FORMAT
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

        NagSuppressions.add_resource_suppressions(
            self.http_api,
            [
                NagPackSuppression(
                    id="AwsSolutions-APIG4",
                    reason="A public, anonymous API by design: the page calls it with no login. "
                    "It keeps no data, answers only requests that came through CloudFront (a "
                    "secret origin header the function checks) and is bounded by stage "
                    "throttling and the per-client WAF rate rule.",
                )
            ],
            apply_to_children=True,
        )
