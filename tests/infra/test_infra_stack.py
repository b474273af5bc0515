"""aws_cdk.assertions on every property issue 5 asks of the stack."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from infra.headers import load_headers

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]

DEV = {
    "removalPolicy": "destroy",
    "architecture": "x86_64",
    "memorySize": "3008",  # as `-c memorySize=3008` passes it: a string
    "reservedConcurrency": "5",
    "logRetentionDays": "7",
    "throttleRateLimit": "5",
    "throttleBurstLimit": "7",
    "timeoutSeconds": "12",
    "priceClass": "All",
    "model": "student",
}


@pytest.fixture(scope="module")
def default(synth):
    _stack, template, outdir = synth()
    return Template.from_json(template), template, outdir


@pytest.fixture(scope="module")
def dev(synth):
    _stack, template, outdir = synth(**DEV)
    return Template.from_json(template), template, outdir


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict, kind: str) -> tuple[str, dict]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.items()))


def logical_id(template: dict, kind: str) -> str:
    return only(template, kind)[0]


def api_function_id(template: dict) -> str:
    (fid,) = [
        k
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if v["Properties"].get("PackageType") == "Image"
    ]
    return fid


# --- the function ------------------------------------------------------------------------------
def test_function_is_a_container_image_with_defaults(default):
    _t, template, _ = default
    fid = api_function_id(template)
    props = template["Resources"][fid]["Properties"]
    assert props["PackageType"] == "Image"
    assert props["Architectures"] == ["arm64"]
    assert props["MemorySize"] == 2048
    assert props["Timeout"] == 10
    # None by default: a new account (quota 10) must keep 10 unreserved, so any fails there.
    assert "ReservedConcurrentExecutions" not in props
    assert "Handler" not in props and "Runtime" not in props  # the Dockerfile's CMD decides
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert template["Resources"][log_group]["Properties"]["RetentionInDays"] == 14
    assert props["Environment"]["Variables"]["EMOTION_MODEL"] == "models/emotion.onnx"


def test_function_knobs_follow_context(dev):
    _, template, _ = dev
    props = template["Resources"][api_function_id(template)]["Properties"]
    assert props["Architectures"] == ["x86_64"]
    assert props["MemorySize"] == 3008
    assert props["Timeout"] == 12
    assert props["ReservedConcurrentExecutions"] == 5  # reservedConcurrency=5
    assert props["Environment"]["Variables"]["EMOTION_MODEL"] == "models/emotion-student.onnx"
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert template["Resources"][log_group]["Properties"]["RetentionInDays"] == 7


def test_function_role_writes_only_its_own_logs(default):
    _, template, _ = default
    props = template["Resources"][api_function_id(template)]["Properties"]
    role = props["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]
    policies = [
        p
        for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [props["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]},
        }
    ]


def _image_asset(outdir: Path) -> tuple[dict, Path]:
    manifest = json.loads((outdir / "EmotionEvaluator.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    return image["source"], outdir / image["source"]["directory"]


@pytest.mark.parametrize(
    ("variant", "platform"), [("default", "linux/arm64"), ("dev", "linux/amd64")]
)
def test_image_asset_platform_matches_architecture(variant, platform, request):
    _, _, outdir = request.getfixturevalue(variant)
    source, _ = _image_asset(outdir)
    assert source["dockerFile"] == "function/Dockerfile"
    assert source["platform"] == platform


def test_staged_build_context_holds_dockerfile_and_every_copy_source(default):
    """`cdk deploy` builds from the staged copy: the Dockerfile and all it COPYs must be there
    (models/ included), and nothing big that the image does not need."""
    _, _, outdir = default
    source, context = _image_asset(outdir)
    dockerfile = context / source["dockerFile"]
    assert dockerfile.is_file(), "function/Dockerfile is missing from the staged build context"
    copies = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*COPY\s+(?!--from)(.*)", line, flags=re.I)
        if match:
            parts = [p for p in match.group(1).split() if not p.startswith("--")]
            copies += parts[:-1]
    assert copies, "no COPY in the Dockerfile?"
    for path in copies:
        assert (context / path).exists(), f"COPY {path}: not in the staged build context"
    assert (context / "models" / "emotion.onnx").is_file()
    for heavy in (".venv", "node_modules", ".git", "runs", "build", "cdk.out"):
        assert not (context / heavy).exists(), f"{heavy} was staged into the image context"


# --- the API -----------------------------------------------------------------------------------
def test_api_sends_every_method_of_its_paths_to_the_function(default):
    """ANY: the function answers a wrong method with its own 405 JSON (GET /face included)."""
    t, template, _ = default
    routes = resources(template, "AWS::ApiGatewayV2::Route")
    assert sorted(r["Properties"]["RouteKey"] for r in routes.values()) == [
        "ANY /face",
        "ANY /faces",
        "ANY /health",
        "ANY /openapi.json",
    ]
    fid = api_function_id(template)
    for route in routes.values():
        integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        integration = template["Resources"][integration_id]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["IntegrationUri"] == {"Fn::GetAtt": [fid, "Arn"]}
    t.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    t.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})
    # API Gateway may invoke the function on exactly these routes.
    permissions = resources(template, "AWS::Lambda::Permission")
    assert len(permissions) == 4
    for permission in permissions.values():
        assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"


def test_stage_throttling_and_access_logs(default, dev):
    # Default: 10 viewers x the page's cap (site/js/rate.js, 20/s) = 200/s, burst twice that.
    for t, rate, burst in ((default[0], 200, 400), (dev[0], 5, 7)):
        t.has_resource_properties(
            "AWS::ApiGatewayV2::Stage",
            {
                "StageName": "$default",
                "AutoDeploy": True,
                "DefaultRouteSettings": {
                    "ThrottlingRateLimit": rate,
                    "ThrottlingBurstLimit": burst,
                },
                "AccessLogSettings": {
                    "DestinationArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
                    "Format": Match.string_like_regexp(r"\$context\.requestId"),
                },
            },
        )


# --- the bucket ----------------------------------------------------------------------------------
def test_bucket_private_encrypted_no_website(default):
    _t, template, _ = default
    _, bucket = only(template, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert "WebsiteConfiguration" not in props


def test_bucket_enforces_ssl_and_only_cloudfront_reads_it(default):
    _t, template, _ = default
    bucket_id = logical_id(template, "AWS::S3::Bucket")
    distribution_id = logical_id(template, "AWS::CloudFront::Distribution")
    _, policy = only(template, "AWS::S3::BucketPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny" and "Bool" in s.get("Condition", {})]
    assert len(deny) == 1
    assert deny[0]["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    assert deny[0]["Action"] == "s3:*" and deny[0]["Principal"] == {"AWS": "*"}
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    source = json.dumps(allow["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert distribution_id in source  # this distribution only
    assert bucket_id in json.dumps(allow["Resource"])


def test_bucket_removal_policy_by_context(default, dev):
    t, template, _ = default
    t.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
    t.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    for log_group in resources(template, "AWS::Logs::LogGroup").values():
        assert log_group["DeletionPolicy"] == "Retain"
    t, template, _ = dev
    t.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"})
    t.resource_count_is("Custom::S3AutoDeleteObjects", 1)
    for log_group in resources(template, "AWS::Logs::LogGroup").values():
        assert log_group["DeletionPolicy"] == "Delete"


def test_every_log_group_has_the_retention_knob(default, dev):
    # function, API access log, the page's deployment handler; with removalPolicy=destroy also
    # the bucket's auto-delete handler (tests/infra/test_infra_protection.py).
    for (_, template, _), days, count in ((default, 14, 3), (dev, 7, 4)):
        log_groups = resources(template, "AWS::Logs::LogGroup")
        assert len(log_groups) == count
        for name, log_group in log_groups.items():
            assert log_group["Properties"]["RetentionInDays"] == days, name


# --- the page's deployment --------------------------------------------------------------------------
def test_bucket_deployment_ships_the_build_folder_and_invalidates(default, site_build):
    _t, template, outdir = default
    deployments = resources(template, "Custom::CDKBucketDeployment")
    assert deployments, "no BucketDeployment"
    invalidating = [d for d in deployments.values() if "DistributionId" in d["Properties"]]
    assert len(invalidating) == 1, "exactly one deployment (the last) invalidates CloudFront"
    props = invalidating[0]["Properties"]
    assert props["DistributionId"] == {"Ref": logical_id(template, "AWS::CloudFront::Distribution")}
    assert props["DistributionPaths"] == ["/*"]
    for name, deployment in deployments.items():
        props = deployment["Properties"]
        assert props["DestinationBucketName"] == {"Ref": logical_id(template, "AWS::S3::Bucket")}
        # Content-hashed files are never pruned: the page still live during the deploy names
        # the old model file until the next deployment uploads the new manifest.
        assert props.get("Prune", True) is ("Hashed" not in name)
    assert any("Hashed" in name for name in deployments)
    # One AWS CLI layer, the one the shared deployment handler uses.
    (layer_id,) = resources(template, "AWS::Lambda::LayerVersion")
    handlers = [
        f
        for f in resources(template, "AWS::Lambda::Function").values()
        if "Layers" in f["Properties"]
    ]
    assert [h["Properties"]["Layers"] for h in handlers] == [[{"Ref": layer_id}]]
    # The staged sources together are build/site, less build leftovers and the header file,
    # each file in exactly one of them (tests/infra/test_infra_protection.py: Cache-Control).
    manifest = json.loads((outdir / "EmotionEvaluator.assets.json").read_text())
    keys = {k for d in deployments.values() for k in d["Properties"]["SourceObjectKeys"]}
    staged = [
        outdir / f["source"]["path"]
        for f in manifest["files"].values()
        if f["source"].get("packaging") == "zip"
        and any(dest["objectKey"] in keys for dest in f["destinations"].values())
    ]
    assert len(staged) == len(deployments)
    files: set[str] = set()
    for folder in staged:
        these = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert not these & files, f"a file is in two deployments: {these & files}"
        files |= these
    expected = {
        str(p.relative_to(site_build))
        for p in site_build.rglob("*")
        if p.is_file() and p.name not in (".built", "headers.json")
    }
    assert files == expected
    assert "vendor/tracking-min.js" in files


# --- CloudFront ---------------------------------------------------------------------------------
def _distribution(template: dict) -> dict:
    return only(template, "AWS::CloudFront::Distribution")[1]["Properties"]["DistributionConfig"]


def test_default_behaviour_is_the_bucket_through_oac(default):
    t, template, _ = default
    config = _distribution(template)
    origins = {o["Id"]: o for o in config["Origins"]}
    behaviour = config["DefaultCacheBehavior"]
    origin = origins[behaviour["TargetOriginId"]]
    bucket_id = logical_id(template, "AWS::S3::Bucket")
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}
    oac_id = logical_id(template, "AWS::CloudFront::OriginAccessControl")
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    assert origin["S3OriginConfig"]["OriginAccessIdentity"] == ""  # no legacy OAI
    t.resource_count_is("AWS::CloudFront::CloudFrontOriginAccessIdentity", 0)
    t.has_resource_properties(
        "AWS::CloudFront::OriginAccessControl",
        {
            "OriginAccessControlConfig": {
                "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always",
                "SigningProtocol": "sigv4",
            }
        },
    )
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["Compress"] is True
    assert behaviour["CachePolicyId"] == CACHING_OPTIMIZED
    assert config["DefaultRootObject"] == "index.html"
    assert config["Enabled"] is True


def test_api_paths_go_to_the_http_api_uncached(default):
    _, template, _ = default
    config = _distribution(template)
    origins = {o["Id"]: o for o in config["Origins"]}
    api_id = logical_id(template, "AWS::ApiGatewayV2::Api")
    behaviours = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert sorted(behaviours) == ["/face", "/faces", "/health", "/openapi.json"]
    for behaviour in behaviours.values():
        assert behaviour["CachePolicyId"] == CACHING_DISABLED
        assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
        assert sorted(behaviour["AllowedMethods"]) == sorted(ALL_METHODS)
        assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
        origin = origins[behaviour["TargetOriginId"]]
        domain = json.dumps(origin["DomainName"])
        assert api_id in domain and ".execute-api." in domain
        assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"


def test_price_class_by_context(default, dev):
    assert _distribution(default[1])["PriceClass"] == "PriceClass_100"
    assert _distribution(dev[1])["PriceClass"] == "PriceClass_All"


def _policy_as_headers(config: dict) -> dict[str, str]:
    """The CloudFormation response-headers config, read back as the header lines it sends."""
    security = config["SecurityHeadersConfig"]
    headers = {}
    for item in config.get("CustomHeadersConfig", {}).get("Items", []):
        assert item["Override"] is True
        headers[item["Header"]] = item["Value"]
    if "ContentSecurityPolicy" in security:
        headers["Content-Security-Policy"] = security["ContentSecurityPolicy"][
            "ContentSecurityPolicy"
        ]
    if "ContentTypeOptions" in security:
        headers["X-Content-Type-Options"] = "nosniff"
    if "FrameOptions" in security:
        headers["X-Frame-Options"] = security["FrameOptions"]["FrameOption"]
    if "ReferrerPolicy" in security:
        headers["Referrer-Policy"] = security["ReferrerPolicy"]["ReferrerPolicy"]
    if "StrictTransportSecurity" in security:
        hsts = security["StrictTransportSecurity"]
        value = f"max-age={hsts['AccessControlMaxAgeSec']}"
        value += "; includeSubDomains" if hsts.get("IncludeSubdomains") else ""
        value += "; preload" if hsts.get("Preload") else ""
        headers["Strict-Transport-Security"] = value
    for name, setting in security.items():
        assert setting["Override"] is True, f"{name} does not override the origin's header"
    return headers


def test_response_headers_policy_is_exactly_site_headers_json(default):
    _, template, _ = default
    policy_id, policy = only(template, "AWS::CloudFront::ResponseHeadersPolicy")
    sent = _policy_as_headers(policy["Properties"]["ResponseHeadersPolicyConfig"])
    assert sent == load_headers()
    # What the issue requires of that file, whatever it says in detail.
    assert "camera=(self)" in sent["Permissions-Policy"]
    assert "max-age=" in sent["Strict-Transport-Security"]
    assert sent["X-Content-Type-Options"] == "nosniff"
    assert sent["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
    assert sent["Referrer-Policy"]
    assert "default-src" in sent["Content-Security-Policy"]
    # ...and every behaviour sends it, the API's included.
    config = _distribution(template)
    for behaviour in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]:
        assert behaviour["ResponseHeadersPolicyId"] == {"Ref": policy_id}


def test_the_api_answers_only_what_came_through_cloudfront(default):
    """CloudFront adds the origin header to every API request; its value is a secret made at
    deploy (only a reference in the template), and the function gets the same value: the
    function refuses a request without it (tests/function/test_lambda_handler.py)."""
    from emotion.origin import HEADER
    from infra.protection import ORIGIN_HEADER

    _, template, _ = default
    assert ORIGIN_HEADER == HEADER
    secret_id, secret = only(template, "AWS::SecretsManager::Secret")
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and "SecretStringTemplate" not in generated
    resolve = ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:::}}"]
    reference = {"Fn::Join": ["", resolve]}
    config = _distribution(template)
    api_origins = [o for o in config["Origins"] if ".execute-api." in json.dumps(o["DomainName"])]
    assert len(api_origins) == 1
    headers = api_origins[0]["OriginCustomHeaders"]
    assert headers == [{"HeaderName": ORIGIN_HEADER, "HeaderValue": reference}]
    function = template["Resources"][api_function_id(template)]["Properties"]
    assert function["Environment"]["Variables"]["EMOTION_ORIGIN_SECRET"] == reference
    assert "SecretString" not in secret["Properties"]  # generated at deploy, never written here


def test_outputs_site_and_api_urls(default):
    _, template, _ = default
    outputs = template["Outputs"]
    site = json.dumps(outputs["SiteUrl"]["Value"])
    assert '"https://"' in site and logical_id(template, "AWS::CloudFront::Distribution") in site
    api = json.dumps(outputs["ApiUrl"]["Value"])
    assert '"https://"' in api and logical_id(template, "AWS::ApiGatewayV2::Api") in api
