"""cdk-nag (AwsSolutions), cfn-lint, and the real `cdk synth` through the pinned CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "default": {},
    "dev-x86": {
        "removalPolicy": "destroy",
        "architecture": "x86_64",
        "reservedConcurrency": "none",
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cdk_nag_aws_solutions_no_unsuppressed_findings(synth, variant):
    stack, _template, _ = synth(**VARIANTS[variant])
    annotations = Annotations.from_stack(stack)
    errors = annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    warnings = annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    shown = [f"{m.id}: {str(m.entry.data)[:160]}" for m in errors + warnings]
    assert not errors, "unsuppressed AwsSolutions errors:\n" + "\n".join(shown)
    assert not warnings, "unsuppressed AwsSolutions warnings:\n" + "\n".join(shown)


def test_every_nag_suppression_gives_a_reason(synth):
    _, template, _ = synth()
    suppressions = [
        rule
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions, "no suppressions found: did the stack stop recording them?"
    for rule in suppressions:
        assert rule["id"].startswith("AwsSolutions-")
        assert len(rule["reason"]) >= 40, f"{rule['id']}: reason too thin: {rule['reason']!r}"
    # Our own function, role and API stage need none.
    accepted = {rule["id"] for rule in suppressions}
    assert accepted <= {
        "AwsSolutions-S1",
        "AwsSolutions-CFR1",
        "AwsSolutions-CFR2",
        "AwsSolutions-CFR3",
        "AwsSolutions-CFR4",
        "AwsSolutions-APIG4",
        "AwsSolutions-SMG4",  # the origin header's secret: a redeploy is its rotation
        "AwsSolutions-L1",
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
    }, f"a new kind of suppression: {sorted(accepted)}"


def cfn_lint(template_path: Path) -> list[dict]:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", str(template_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip(), f"cfn-lint printed nothing: {result.stderr}"
    return json.loads(result.stdout)


def test_cfn_lint_no_errors_on_cli_template(cli_synth):
    matches = cfn_lint(cli_synth / "EmotionEvaluator.template.json")
    errors = [m for m in matches if m["Level"] == "Error"]
    assert not errors, "\n".join(f"{m['Rule']['Id']} {m['Message']}" for m in errors)


def test_cfn_lint_no_errors_on_dev_variant(synth):
    _, _, outdir = synth(**VARIANTS["dev-x86"])
    matches = cfn_lint(outdir / "EmotionEvaluator.template.json")
    errors = [m for m in matches if m["Level"] == "Error"]
    assert not errors, "\n".join(f"{m['Rule']['Id']} {m['Message']}" for m in errors)


def test_cli_synth_makes_a_cloud_assembly(cli_synth):
    """`npx cdk synth` (the CLI pinned in package.json) with no credentials and no Docker."""
    manifest = json.loads((cli_synth / "manifest.json").read_text())
    assert manifest["artifacts"]["EmotionEvaluator"]["type"] == "aws:cloudformation:stack"
    template = json.loads((cli_synth / "EmotionEvaluator.template.json").read_text())
    kinds = {r["Type"] for r in template["Resources"].values()}
    for kind in (
        "AWS::Lambda::Function",
        "AWS::ApiGatewayV2::Api",
        "AWS::S3::Bucket",
        "AWS::CloudFront::Distribution",
        "Custom::CDKBucketDeployment",
    ):
        assert kind in kinds
    assets = json.loads((cli_synth / "EmotionEvaluator.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["platform"] == "linux/arm64"  # the default architecture


def test_cli_synth_nag_report_has_no_non_compliant_rows(cli_synth):
    (report,) = cli_synth.glob("AwsSolutions-*NagReport.csv")
    with report.open() as f:
        rows = list(csv.DictReader(f))
    assert rows
    bad = [r for r in rows if r["Compliance"] == "Non-Compliant"]
    assert not bad, "\n".join(f"{r['Rule ID']} {r['Resource ID']}" for r in bad)
    for row in rows:
        if row["Compliance"] == "Suppressed":
            assert row["Exception Reason"] not in ("", "N/A")


def _run_app(context: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """The app as the CLI runs it (cdk.json's command), with context as the CLI passes it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        PYTHONPATH=f"{ROOT / 'function'}{os.pathsep}{ROOT}",
        CDK_CONTEXT_JSON=json.dumps(context),
        CDK_OUTDIR=str(tmp_path),
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    app = json.loads((ROOT / "cdk.json").read_text())["app"].split()
    assert app[1:] == ["-m", "infra.app"]
    return subprocess.run(
        [sys.executable, "-m", "infra.app"], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_bad_context_value_fails_with_a_clear_message(tmp_path, site_build):
    result = _run_app({"architecture": "sparc"}, tmp_path)
    assert result.returncode != 0
    assert "architecture='sparc'" in result.stderr and "arm64, x86_64" in result.stderr
    assert "Traceback" not in result.stderr
