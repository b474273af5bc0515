"""What models/ costs the repository (issue 21): the tracked files total at most 30 MB, and a
retrain of either model adds at most 15 MB. git stores every version of a file
zlib-compressed, and a retrain rewrites the model's files whole; training/README.md says how
each file is rebuilt."""

from __future__ import annotations

import subprocess
from pathlib import Path

from training.ship.int8_compute import git_bytes

ROOT = Path(__file__).resolve().parents[2]
# What one retrain rewrites: the model, its card, and (the server's) its confusion plot.
RETRAINED_TOGETHER = {
    "server": ("emotion.onnx", "emotion.json", "emotion-confusion.png"),
    "device": ("emotion-student.onnx", "emotion-student.json"),
}


def tracked() -> dict[str, Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "models"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return {Path(p).name: ROOT / p for p in listed.split("\0") if p}


def test_the_files_tracked_under_models_total_at_most_30_mb():
    files = tracked()
    assert "emotion.onnx" in files and "emotion-student.onnx" in files
    assert sum(p.stat().st_size for p in files.values()) <= 30_000_000


def test_a_retrain_of_either_model_adds_at_most_15_mb_to_the_repository():
    files = tracked()
    for model, names in RETRAINED_TOGETHER.items():
        assert set(names) <= set(files), model
        assert sum(git_bytes(files[n]) for n in names) <= 15_000_000, model
