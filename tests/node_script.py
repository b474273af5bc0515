"""Run an ES-module script with node from the repository root and read the JSON it prints:
how the tests exercise the page's pure modules (site/js/*.js) without a browser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_node(script: str, timeout: float = 60) -> dict:
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
