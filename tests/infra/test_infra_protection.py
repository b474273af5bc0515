"""Issue 10 in the template: fits a fresh account, protected, observable, cleans up after itself.

Sizing, per-client limit, payload limit, region-qualified CloudFront names, log groups on
destroy, Cache-Control of the page's files, alarms -> SNS, the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from infra.config import (
    EVENT_OVERHEAD_BYTES,
    LAMBDA_PAYLOAD_BYTES,
    MAX_BODY_BYTES,
    PAGE_SEND_RATE,
    PAGES_PER_CLIENT,
    page_send_rate,
)
from infra.frontend import CACHE_FOREVER, CACHE_REVALIDATE, HASHED_NAME
from infra.monitoring import METRICS_NAMESPACE

ROOT = Path(__file__).resolve().parents[2]
DESTROY = {"removalPolicy": "destroy"}
NO_WAF = {"perClientLimit": "none", "alarmEmail": "ops@example.com", "concurrentViewers": "3"}


@pytest.fixture(scope="module")
def default(synth):
    _stack, template, outdir = synth()
    return Template.from_json(template), template, outdir


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict, kind: str) -> tuple[str, dict]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.items()))


def api_function(template: dict) -> dict:
    (function,) = [
        v
        for v in resources(template, "AWS::Lambda::Function").values()
        if v["Properties"].get("PackageType") == "Image"
    ]
    return function["Properties"]


# --- sizing: the page's send rate, the stage throttle, WAF's per-client rule -------------------
def test_page_send_rate_is_read_from_the_page(tmp_path):
    assert page_send_rate(ROOT / "site" / "js" / "rate.js") == PAGE_SEND_RATE
    assert 15 <= PAGE_SEND_RATE <= 30  # one face at 15+/s (issue 13), three share it
    other = tmp_path / "rate.js"
    other.write_text("export const MAX_REQUESTS_PER_SECOND = 3;\n")
    assert page_send_rate(other) == 3
    other.write_text("export const SOMETHING_ELSE = 3;\n")
    with pytest.raises(ValueError, match="MAX_REQUESTS_PER_SECOND"):
        page_send_rate(other)


def test_stage_throttle_is_viewers_times_the_page_rate(synth):
    _, template, _ = synth(**NO_WAF)
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == 3 * PAGE_SEND_RATE
    assert settings["ThrottlingBurstLimit"] == 2 * 3 * PAGE_SEND_RATE
    # A photo costs as much as ~20 crops: /faces has its own, lower limit (one photo a second
    # for 3 viewers at 0.2 photos/s each, rounded up to 1).
    faces = stage["Properties"]["RouteSettings"]["ANY /faces"]
    assert faces == {"ThrottlingRateLimit": 1, "ThrottlingBurstLimit": 2}


def test_per_client_rate_rule_on_the_api_paths(default):
    _t, template, _ = default
    acl_id, acl = only(template, "AWS::WAFv2::WebACL")
    props = acl["Properties"]
    assert props["Scope"] == "CLOUDFRONT" and props["DefaultAction"] == {"Allow": {}}
    (rule,) = props["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP"
    assert rate["EvaluationWindowSec"] == 60
    assert rate["Limit"] == PAGES_PER_CLIENT * PAGE_SEND_RATE * 60
    paths = json.dumps(rate["ScopeDownStatement"])
    assert '"/face"' in paths and '"/health"' in paths  # page loads are not counted
    block = rule["Action"]["Block"]["CustomResponse"]
    assert block["ResponseCode"] == 429  # the page's calm "busy, retrying" state
    body = json.loads(props["CustomResponseBodies"][block["CustomResponseBodyKey"]]["Content"])
    assert body["error"] == "rate_limited" and body["detail"]
    # CloudFront web ACLs live in us-east-1 only: created (and attached) only there.
    assert acl["Condition"] == "InUsEast1"
    assert template["Conditions"]["InUsEast1"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]
    }
    _, distribution = only(template, "AWS::CloudFront::Distribution")
    assert distribution["Properties"]["DistributionConfig"]["WebACLId"] == {
        "Fn::If": ["InUsEast1", {"Fn::GetAtt": [acl_id, "Arn"]}, {"Ref": "AWS::NoValue"}]
    }


def test_per_client_limit_can_be_switched_off(synth):
    _, template, _ = synth(**NO_WAF)
    assert not resources(template, "AWS::WAFv2::WebACL")
    _, distribution = only(template, "AWS::CloudFront::Distribution")
    assert "WebACLId" not in distribution["Properties"]["DistributionConfig"]


def test_no_reserved_concurrency_by_default(default):
    assert "ReservedConcurrentExecutions" not in api_function(default[1])


# --- payload: our 413 comes before Lambda's 6 MB limit ---------------------------------------
def test_body_limit_leaves_room_for_base64_in_the_lambda_event(default):
    env = api_function(default[1])["Environment"]["Variables"]
    limit = int(env["EMOTION_MAX_BODY_BYTES"])
    assert limit == MAX_BODY_BYTES
    base64_size = 4 * -(-limit // 3)
    assert base64_size + EVENT_OVERHEAD_BYTES < LAMBDA_PAYLOAD_BYTES == 6_000_000


# --- CloudFront names are global: they carry the region ----------------------------------------
def test_cloudfront_names_carry_stack_and_region(default):
    _t, template, _ = default
    named = [
        only(template, "AWS::CloudFront::ResponseHeadersPolicy")[1]["Properties"][
            "ResponseHeadersPolicyConfig"
        ]["Name"],
        only(template, "AWS::CloudFront::OriginAccessControl")[1]["Properties"][
            "OriginAccessControlConfig"
        ]["Name"],
        only(template, "AWS::WAFv2::WebACL")[1]["Properties"]["Name"],
    ]
    for name in named:
        parts = name["Fn::Join"][1]
        assert {"Ref": "AWS::Region"} in parts and "EmotionEvaluator" in parts, name


# --- destroy leaves no log group behind --------------------------------------------------------
def test_every_function_logs_to_a_log_group_of_the_stack(synth):
    _, template, _ = synth(**DESTROY)
    groups = resources(template, "AWS::Logs::LogGroup")
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == 3  # ours, the page's deployment handler, the auto-delete handler
    for name, function in functions.items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in groups, f"{name} logs to a group the stack does not own"
    for name, group in groups.items():
        assert group["DeletionPolicy"] == "Delete", name


def test_auto_delete_handler_log_group_outlives_its_last_run(synth):
    _, template, _ = synth(**DESTROY)
    _, custom = only(template, "Custom::S3AutoDeleteObjects")
    handler_id = custom["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    group = template["Resources"][handler_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    # CloudFormation deletes in reverse dependency order: the custom resource (the handler's
    # last run, emptying the bucket) goes before its log group.
    assert group in custom["DependsOn"]
    assert template["Resources"][group]["Properties"]["RetentionInDays"] == 14


# --- Cache-Control of the page's files --------------------------------------------------------
def test_cache_control_hashed_names_forever_the_rest_revalidated(default, site_build):
    _t, template, outdir = default
    manifest = json.loads((outdir / "EmotionEvaluator.assets.json").read_text())
    by_key = {
        dest["objectKey"]: outdir / f["source"]["path"]
        for f in manifest["files"].values()
        for dest in f["destinations"].values()
    }
    seen = {}
    for deployment in resources(template, "Custom::CDKBucketDeployment").values():
        props = deployment["Properties"]
        (key,) = props["SourceObjectKeys"]
        folder = by_key[key]
        cache = props["SystemMetadata"]["cache-control"]
        for path in folder.rglob("*"):
            if path.is_file():
                seen[str(path.relative_to(folder))] = cache
    assert seen["index.html"] == CACHE_REVALIDATE == "no-cache"
    assert seen["js/app.js"] == seen["js/rate.js"] == CACHE_REVALIDATE
    assert seen["vendor/tracking-min.js"] == CACHE_REVALIDATE  # same name across versions
    for name, cache in seen.items():
        assert cache == (CACHE_FOREVER if HASHED_NAME.search(name) else CACHE_REVALIDATE), name
    assert "immutable" in CACHE_FOREVER and "max-age=31536000" in CACHE_FOREVER
    assert HASHED_NAME.search("models/emotion.8a14523c.onnx")
    assert not HASHED_NAME.search("js/app.js")


# --- watching it: alarms -> SNS, dashboard, structured logs -----------------------------------
def test_alarms_on_5xx_rate_p99_duration_throttles_and_errors(default):
    t, template, _ = default
    topic_id, _ = only(template, "AWS::SNS::Topic")
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 5
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": topic_id}]
        assert props["OKActions"] == [{"Ref": topic_id}]
        assert props["TreatMissingData"] == "notBreaching"
    by_metric = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms.values()}
    assert by_metric["Duration"]["ExtendedStatistic"] == "p99"
    assert by_metric["Duration"]["Threshold"] == 1000
    for name in ("Throttles", "Errors"):
        assert by_metric[name]["Namespace"] == "AWS/Lambda"
        assert by_metric[name]["Threshold"] == 0 and by_metric[name]["Statistic"] == "Sum"
    rate = by_metric[None]  # the metric-math alarm
    (expression,) = [m for m in rate["Metrics"] if "Expression" in m]
    assert re.search(r"100 \* errors / requests", expression["Expression"])
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    assert stats["errors"]["MetricName"] == "5xx" and stats["requests"]["MetricName"] == "Count"
    assert stats["errors"]["Namespace"] == "AWS/ApiGateway"
    # 429s (HTTP APIs publish no count of them): from the stage's access log.
    throttled = by_metric["ApiThrottled"]
    assert throttled["Statistic"] == "Sum" and throttled["Threshold"] == 100
    (metric_filter,) = resources(template, "AWS::Logs::MetricFilter").values()
    props = metric_filter["Properties"]
    assert props["FilterPattern"] == '{ $.status = "429" }'
    assert props["MetricTransformations"][0]["MetricName"] == "ApiThrottled"
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    access_log = stage["Properties"]["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert props["LogGroupName"] == {"Ref": access_log}
    t.has_resource_properties("AWS::SNS::TopicPolicy", Match.any_value())  # enforce SSL
    t.resource_count_is("AWS::SNS::Subscription", 0)


def test_alarm_email_from_context(synth):
    _, template, _ = synth(**NO_WAF)
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"


def test_dashboard_shows_the_functions_own_metrics(default):
    _t, template, _ = default
    _, dashboard = only(template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in (METRICS_NAMESPACE, "Requests", "Latency", "Errors", "error", "Faces", "5xx"):
        assert needle in body, needle
    assert "Outputs" in template and "DashboardUrl" in template["Outputs"]


def test_function_metrics_namespace_matches_the_app(default):
    from emotion import logs

    env = api_function(default[1])["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE == logs.NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == logs.SERVICE
