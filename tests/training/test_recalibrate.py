"""`make recalibrate`: a labelled folder -> the served model with a `recalibration` card block,
fitted with the server's packages only, served as the card says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotion.card import CLASSES
from emotion.model import EmotionModel
from emotion.recalibration import adjust
from training.data import readers

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion.onnx"
VALID = ROOT.parent / "shared" / "data" / "ferplus" / "FER2013Valid"
# Folder names as people write them: normalised as make finetune does; no Neutral folder.
FOLDERS = {"angry": "Anger", "Happy": "Happiness", "sad": "Sadness", "surprised": "Surprise"}


def run(*args: str) -> subprocess.CompletedProcess:
    """The command as `make recalibrate` runs it, in a fresh interpreter that must not load
    PyTorch (a deployment recalibrates with the server's packages)."""
    code = (
        "import sys, training.adapt.recalibrate as r\n"
        "try:\n    r.main(sys.argv[1:])\n"
        "finally:\n    print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'function'}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """15 FER+ Valid faces of four classes, read from ../shared at run time, as JPEGs (darker:
    a camera unlike FER's)."""
    root = tmp_path_factory.mktemp("people")
    faces, labels = readers.read_ferplus(VALID)
    for name, cls in FOLDERS.items():
        (root / name).mkdir()
        paths = [f.path for f, y in zip(faces, labels, strict=True) if y == CLASSES.index(cls)]
        for path in paths[:15]:
            image = Image.open(path).convert("L").point(lambda v: int(255 * (v / 255) ** 1.6))
            image.save(root / name / f"{path.stem}.jpg", quality=85)
    return root


def test_recalibrate_writes_a_card_the_server_applies(folder, tmp_path):
    out = tmp_path / "deployment"
    done = run("--data", str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no torch")
    card = json.loads((out / "emotion.json").read_text())
    block = card["recalibration"]
    assert block["counts"] == {c: (15 if c in FOLDERS.values() else 0) for c in CLASSES}
    assert set(block["bias"]) == set(CLASSES)
    assert all(block["bias"][c] == 0 for c in CLASSES if c not in FOLDERS.values())
    held = block["held_out"]
    assert held["before"]["faces"] == held["after"]["faces"] == 4 * 4  # 30% of 15, per class
    assert held["after"]["mean_recall"] >= held["before"]["mean_recall"] - 0.1
    assert (out / "emotion.onnx").read_bytes() == MODEL.read_bytes()

    served = EmotionModel(out / "emotion.onnx")
    plain = EmotionModel(MODEL)
    assert served.card.label == f"{plain.card.label}+{block['id']}"
    face = Image.open(next((folder / "angry").iterdir())).convert("L")
    assert block["kind"] in ("class-bias", "class-map") and ("map" in block) == (
        block["kind"] == "class-map"
    )
    bias = np.array([block["bias"][c] for c in CLASSES])
    rows = block.get("map", {})
    mapping = np.array([[rows.get(r, {}).get(c, 0.0) for c in CLASSES] for r in CLASSES])
    expected = adjust(plain.predict([face]), bias, mapping)
    np.testing.assert_allclose(served.predict([face]), expected, atol=1e-9)

    # Never over an existing model unless asked.
    again = run("--data", str(folder), "--out", str(out))
    assert again.returncode != 0 and "already exists" in again.stderr
    assert run("--data", str(folder), "--out", str(out), "--overwrite").returncode == 0


@pytest.mark.parametrize(
    ("make_bad", "named"),
    [
        (lambda root: (root / "angry" / "broken.jpg").write_bytes(b"not a jpeg"), "broken.jpg"),
        (lambda root: (root / "joyful-ish").mkdir(), "joyful-ish"),
    ],
)
def test_bad_data_stops_with_the_file_named(folder, tmp_path, make_bad, named):
    bad = tmp_path / "data"
    shutil.copytree(folder, bad)
    make_bad(bad)
    done = run("--data", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode != 0
    assert named in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "emotion.json").exists()


def test_an_empty_folder_stops(tmp_path):
    (tmp_path / "data" / "angry").mkdir(parents=True)
    done = run("--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"))
    assert done.returncode != 0 and "no images" in done.stderr
