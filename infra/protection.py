"""Who may call the API: only CloudFront, and each client at most so often.

- A secret made at deploy, which CloudFront sends to the API as the ORIGIN_HEADER header and the
  function checks (function/emotion/origin.py), so the API's own execute-api endpoint, public as
  every HTTP API's is, answers 403.
- A WAF rate rule per client address on the API paths, answering 429 like the stage throttle.
  CloudFront web ACLs exist only in us-east-1, so the ACL (and its fee) is created only when the
  stack is deployed there (infra/README.md).

Its resources are made in the stack's scope, not under this construct: their logical IDs date
from when the stack was one class, and a new ID makes CloudFormation replace the resource. Give
a resource added here later this construct as its scope.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnCondition, Fn, IResolvable, RemovalPolicy, Stack
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

# The function reads the same name (function/emotion/origin.py: HEADER).
ORIGIN_HEADER = "x-origin-verify"


class Protection(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        per_client_limit: int | None,
        web_acl_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        # Made by Secrets Manager at deploy; the template holds only a reference to it, which
        # CloudFormation resolves into the function's environment and CloudFront's header.
        self.origin_secret = secretsmanager.Secret(
            stack,
            "OriginSecret",
            description="Header value CloudFront adds to API requests; the API refuses others",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # A CloudFormation reference, resolved at deploy: the value is never in the template.
        self.secret_value = self.origin_secret.secret_value.unsafe_unwrap()
        # What CloudFront adds to every request it sends to the API.
        self.origin_headers = {ORIGIN_HEADER: self.secret_value}
        NagSuppressions.add_resource_suppressions(
            self.origin_secret,
            [
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="The origin header's value: CloudFront and the function read it only "
                    "at deploy, so a rotation would need a redeploy; redeploying with a new "
                    "secret is the rotation (infra/README.md).",
                )
            ],
            apply_to_children=True,
        )

        self.web_acl: wafv2.CfnWebACL | None = None
        # The distribution's WebACLId: the ACL's ARN in us-east-1, no value elsewhere.
        self.web_acl_id: IResolvable | None = None
        if per_client_limit:
            self.web_acl, self.web_acl_id = _per_client_limit(stack, per_client_limit, web_acl_name)


def _per_client_limit(stack: Stack, limit: int, name: str) -> tuple[wafv2.CfnWebACL, IResolvable]:
    in_us_east_1 = CfnCondition(
        stack, "InUsEast1", expression=Fn.condition_equals(Aws.REGION, "us-east-1")
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
        stack,
        "PerClientLimit",
        name=name,
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
                        limit=limit,
                        scope_down_statement=_api_paths_statement(),
                    )
                ),
                visibility_config=visibility("EmotionEvaluatorPerClient"),
            )
        ],
    )
    acl.cfn_options.condition = in_us_east_1
    return acl, Fn.condition_if(in_us_east_1.logical_id, acl.attr_arn, Aws.NO_VALUE)


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
