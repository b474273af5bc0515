"""A missing or corrupt model or detector file stops the server at start, with one clear line
naming the file (not a traceback, and not at the first request)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DETECTOR, MODEL

ROOT = Path(__file__).resolve().parents[2]


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`make run`'s server command, as it starts; it must exit by itself."""
    command = [sys.executable, "-m", "uvicorn", "emotion.app:create_app", "--factory", "--port", "0"]  # fmt: skip
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT / 'function'}:{ROOT}", **env}
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=120)


def damaged(tmp_path: Path, what: str) -> tuple[dict[str, str], Path]:
    models = tmp_path / "models"
    models.mkdir()
    for path in (MODEL, MODEL.with_suffix(".json"), DETECTOR, DETECTOR.with_suffix(".json")):
        shutil.copy(path, models / path.name)
    env = {
        "EMOTION_MODEL": str(models / MODEL.name),
        "EMOTION_DETECTOR": str(models / DETECTOR.name),
    }
    target = {
        "model_missing": models / MODEL.name,
        "model_corrupt": models / MODEL.name,
        "card_missing": models / MODEL.with_suffix(".json").name,
        "detector_missing": models / DETECTOR.name,
        "detector_corrupt": models / DETECTOR.name,
        "detector_card_missing": models / DETECTOR.with_suffix(".json").name,
    }[what]
    if what.endswith("missing"):
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: 1 << 14])  # truncated
    return env, target


@pytest.mark.parametrize(
    "what",
    [
        "model_missing",
        "model_corrupt",
        "card_missing",
        "detector_missing",
        "detector_corrupt",
        "detector_card_missing",
    ],
)
def test_server_stops_at_start_naming_the_file(tmp_path, what):
    env, target = damaged(tmp_path, what)
    done = start(env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1, done.stderr
    assert str(target) in lines[0]
