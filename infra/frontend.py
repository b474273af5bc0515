"""The one public origin: CloudFront in front of the page's bucket and the API.

    viewer --HTTPS--> CloudFront --+-- default: private S3 bucket (Origin Access Control)
                                   +-- the API paths: the HTTP API (with the origin header)

One origin: HTTPS everywhere (the camera needs it) and no CORS. The response-headers policy
comes from site/headers.json, the file the local server sends too. The page's files go up with
the Cache-Control their names call for, then CloudFront is invalidated.

Its resources are made in the stack's scope, not under this construct: their logical IDs date
from when the stack was one class, and a new ID makes CloudFormation replace the resource (a new
bucket, a new CloudFront address). Give a resource added here later this construct as its scope.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Aws, IResolvable, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.config import Config
from infra.headers import HEADERS_FILE, REPO_ROOT, load_headers, response_headers

SITE_DIR = REPO_ROOT / "build" / "site"
# Build leftovers and the header file (CloudFront sends those headers) stay out of the bucket.
SITE_EXCLUDE = [".built", "headers.json"]
# Browser caching of the page's files (S3 object metadata). A file whose name carries a hash of
# its content never changes: cache it for a year. Any other file (index.html, js/, vendor/...)
# keeps its name across deploys, so browsers must revalidate it (a cheap 304 by ETag) and never
# run old and new scripts together after a deploy.
HASHED_NAME = re.compile(r"[.-][0-9a-f]{8,}\.[A-Za-z0-9]+$")
CACHE_FOREVER = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
PRICE_CLASSES = {"100": "PRICE_CLASS_100", "200": "PRICE_CLASS_200", "All": "PRICE_CLASS_ALL"}


class SiteMissing(FileNotFoundError):
    pass


def require_site(site_dir: Path) -> Path:
    """The built page (`make site`), checked before anything is staged."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise SiteMissing(f"{site_dir}/index.html is missing: run `make site` first")
    return site_dir


class Frontend(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        http_api: apigwv2.HttpApi,
        api_paths: tuple[str, ...],
        origin_headers: Mapping[str, str],
        web_acl_id: IResolvable | None,
        headers_policy_name: str,
        oac_name: str,
        retention: logs.RetentionDays,
        removal: RemovalPolicy,
        site_dir: Path = SITE_DIR,
        headers_file: Path = HEADERS_FILE,
    ) -> None:
        """`origin_headers` go to the API with every request; `web_acl_id`, if any, guards the
        distribution. CloudFront's names are global to the account: the stack gives them."""
        super().__init__(scope, construct_id)
        site_dir = require_site(site_dir)
        stack = Stack.of(self)
        destroy = config.removal_policy == "destroy"

        # --- the page's bucket: private, encrypted, TLS only -----------------------------------
        self.bucket = s3.Bucket(
            stack,
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
            stack,
            "SecurityHeaders",
            response_headers_policy_name=headers_policy_name,
            comment="Security headers from site/headers.json (the local server sends the same)",
            security_headers_behavior=security,
            custom_headers_behavior=custom if custom.custom_headers else None,
        )
        api_origin = origins.HttpOrigin(
            f"{http_api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            custom_headers=dict(origin_headers),
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
            stack,
            "Distribution",
            comment="Real-time emotion evaluator: page + API on one origin",
            default_root_object="index.html",
            price_class=getattr(cloudfront.PriceClass, PRICE_CLASSES[config.price_class]),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    self.bucket,
                    origin_access_control=cloudfront.S3OriginAccessControl(
                        stack, "SiteOac", origin_access_control_name=oac_name
                    ),
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers_policy,
                compress=True,
            ),
            additional_behaviors={path: api_behavior for path in api_paths},
        )
        if web_acl_id is not None:
            self.distribution.node.default_child.add_property_override(
                "DistributionConfig.WebACLId", web_acl_id
            )

        # --- the page's files, then an invalidation so viewers get them at once ---------------
        self._deploy_site(stack, site_dir, retention, removal)
        if destroy:
            self._own_auto_delete_logs(stack, retention)
        self._suppress_nag_findings(stack)

    def _deploy_site(
        self, stack: Stack, site_dir: Path, retention: logs.RetentionDays, removal: RemovalPolicy
    ) -> None:
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
            stack, "SiteDeploymentLogs", retention=retention, removal_policy=removal
        )
        previous = None
        for index, (name, cache_control, members) in enumerate(classes):
            others = [f for f in files if f not in members]
            exclude = [*SITE_EXCLUDE, *others]
            last = index == len(classes) - 1
            deployment = s3deploy.BucketDeployment(
                stack,
                f"SiteDeployment{name}",
                sources=[s3deploy.Source.asset(str(site_dir), exclude=exclude)],
                destination_bucket=self.bucket,
                exclude=exclude,
                # Content-hashed files (the model files) go first and stay: pruning them here
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

    def _own_auto_delete_logs(self, stack: Stack, retention: logs.RetentionDays) -> None:
        """The bucket's auto-delete handler (a CDK singleton) would log to a group Lambda makes
        on its own, which outlives the stack. Give it one of ours, deleted with the stack after
        the handler's last run (the custom resource depends on it, so it goes first)."""
        provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        handler = provider.node.find_child("Handler")
        log_group = logs.LogGroup(
            stack, "AutoDeleteLogs", retention=retention, removal_policy=RemovalPolicy.DESTROY
        )
        handler.add_property_override("LoggingConfig", {"LogGroup": log_group.log_group_name})
        for child in self.bucket.node.children:
            if child.node.id == "AutoDeleteObjectsCustomResource":
                child.node.add_dependency(log_group)

    def _suppress_nag_findings(self, stack: Stack) -> None:
        """Each accepted AwsSolutions finding here, with the reason it is accepted."""

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
        # The CDK's own BucketDeployment handler (a singleton at stack level).
        for child in stack.node.children:
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
                        f"Resource::<{stack.get_logical_id(self.bucket.node.default_child)}.Arn>/*",
                        "Resource::*",
                    ],
                )
