"""CDK entry point (cdk.json: `python -m infra.app`). Runs with no AWS credentials and no
Docker: synth only stages the assets; `cdk deploy` builds and uploads them."""

from __future__ import annotations

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import Config, ConfigError
from infra.frontend import SiteMissing
from infra.stack import EmotionStack


def build(app: cdk.App) -> EmotionStack:
    config = Config.from_context(app.node.try_get_context)
    stack = EmotionStack(
        app,
        config.stack_name,
        config=config,
        description="Real-time emotion evaluator: page on S3 + API on Lambda, behind CloudFront",
    )
    cdk.Tags.of(stack).add("project", "emotion-evaluator")
    # Every AwsSolutions finding is an error at synth unless the stack suppresses it, with a
    # reason (in the construct that makes the resource: infra/backend.py, frontend.py,
    # protection.py). The report lands in cdk.out/AwsSolutions-<stack>-NagReport.csv.
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True, reports=True))
    return stack


def main() -> None:
    app = cdk.App()
    try:
        build(app)
    except (ConfigError, SiteMissing) as exc:
        sys.exit(f"infra: {exc}")
    app.synth()


if __name__ == "__main__":
    main()
