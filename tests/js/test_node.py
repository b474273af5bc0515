"""The page's JavaScript modules on their own, in Node (`node --test`): each tests/js/*.test.mjs
file is one pytest test, so `make test` (and a bare `pytest`) runs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(Path(__file__).parent.glob("*.test.mjs"))


def test_there_are_node_tests():
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_node(path):
    node = shutil.which("node")
    assert node, "node is missing (npm needs it too)"
    done = subprocess.run(
        [node, "--test", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    failed = [line for line in done.stdout.splitlines() if line.startswith("not ok")]
    assert done.returncode == 0, "\n".join([*failed, done.stdout[-4000:], done.stderr[-2000:]])
