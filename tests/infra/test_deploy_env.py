"""The deploy toolchain: `make synth`/`deploy`/`destroy` install only the CDK app's packages
(.venv-cdk), `make deploy` builds without default attestations, and cdk.json uses that venv."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("requirements-dev.txt", "training/requirements", "torch", "fastai", "playwright")


def dry_run(target: str, *args: str) -> str:
    """What `make <target>` would run from a fresh clone (-B: everything out of date)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target", ["synth", "deploy", "destroy"])
def test_deploy_targets_install_only_the_cdk_venv(target):
    commands = dry_run(target)
    assert "-r infra/requirements.txt" in commands
    assert ".venv-cdk" in commands
    for heavy in HEAVY:
        assert heavy not in commands, f"make {target} would install {heavy}"
    assert re.search(rf"npx cdk {target}\b", commands)


def test_smoke_runs_in_the_cdk_venv_too():
    commands = dry_run("smoke", "STACK=Example")
    assert "-r infra/requirements-smoke.txt" in commands
    assert ".venv-cdk/bin/python -m infra.smoke --stack Example" in commands
    for heavy in HEAVY:
        assert heavy not in commands, f"make smoke would install {heavy}"


def test_deploy_builds_without_default_attestations():
    commands = dry_run("deploy")
    (line,) = [c for c in commands.splitlines() if "npx cdk deploy" in c]
    assert line.startswith("BUILDX_NO_DEFAULT_ATTESTATIONS=1 npx cdk deploy")
    makefile = (ROOT / "Makefile").read_text()
    assert "aws/aws-cdk#31548" in makefile  # and says why


def test_cdk_venv_requirements_are_the_cdk_app_only():
    lines = [
        line.strip()
        for line in (ROOT / "infra" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = {line.split("==")[0] for line in lines}
    assert names == {"aws-cdk-lib", "constructs", "cdk-nag"}
    assert all("==" in line for line in lines)
    app = json.loads((ROOT / "cdk.json").read_text())["app"]
    assert app == ".venv-cdk/bin/python -m infra.app"


def test_cdk_venv_has_no_training_or_function_packages(cli_synth):
    """The venv the real `cdk synth` just ran in (cli_synth) holds none of the heavy stacks."""
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    modules = ["torch", "fastai", "playwright", "onnxruntime", "numpy", "aws_cdk", "cdk_nag"]
    done = subprocess.run(
        [str(ROOT / ".venv-cdk" / "bin" / "python"), "-c", probe, *modules],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['aws_cdk', 'cdk_nag']"


def test_ci_deploy_never_waits_for_approval():
    commands = dry_run("deploy-ci")
    (line,) = [c for c in commands.splitlines() if "npx cdk deploy" in c]
    assert line.startswith(
        "BUILDX_NO_DEFAULT_ATTESTATIONS=1 npx cdk deploy --require-approval never"
    )
    for heavy in HEAVY:
        assert heavy not in commands
