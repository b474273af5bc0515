"""`make verify-model`: a real ONNX model re-measured on generated faces against its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from emotion.card import CLASSES
from emotion.model import EmotionModel
from training.measure import verify

SIZE = 16


def random_model(path: Path, seed: int = 0) -> Path:
    """A one-layer network (flatten -> Gemm) with random weights, and its card."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.normal(0, 0.3, (SIZE * SIZE, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w"], ["logits"]),
        ],
        "random",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    card = {"name": "random", "version": "0", "classes": list(CLASSES), "input_size": SIZE,
            "color_mode": "L", "mean": 0.5, "std": 0.25}  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """A folder layout, 5 faces in every class (noise: the figures are what they are)."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(1)
    for folder in CLASSES:
        (root / folder.lower()).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 256, (24, 24), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder.lower() / f"{i}.png")
    return root


@pytest.fixture
def measured_model(tmp_path, faces) -> tuple[Path, dict]:
    """The random model with its true figures written into its card, as evaluate would."""
    path = random_model(tmp_path / "emotion.onnx")
    figures = verify.measure(EmotionModel(path), faces)
    card = json.loads(path.with_suffix(".json").read_text())
    card["metrics"] = {"valid": {**figures, "split": str(faces)}}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path, figures


@pytest.fixture
def lenient(monkeypatch):
    """Floors any model meets, so that only the card comparison is under test."""
    floors = {"accuracy": (">=", 0.0), "mean_recall": (">=", 0.0), "recall": (">=", 0.0),
              "ece_15_bins": ("<=", 1.0)}  # fmt: skip
    monkeypatch.setattr(verify, "FLOORS", floors)


def set_card(path: Path, edit) -> None:
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    edit(card["metrics"]["valid"])
    card_path.write_text(json.dumps(card))


def test_a_card_that_matches_passes(measured_model, faces, lenient, capsys):
    path, figures = measured_model
    assert figures["faces"] == 40
    assert verify.main(["--valid", str(faces), str(path)]) == 0
    out = capsys.readouterr().out
    assert "passed" in out and "FAIL" not in out
    assert sum(f"recall[{c}]" in out for c in CLASSES) == 8


@pytest.mark.parametrize(
    ("edit", "figure"),
    [
        (lambda v: v.update(accuracy=v["accuracy"] + 0.003), "accuracy"),
        (lambda v: v.update(mean_recall=v["mean_recall"] - 0.003), "mean_recall"),
        (
            lambda v: v["recall"].update(Happiness=v["recall"]["Happiness"] + 0.01),
            "recall[Happiness]",
        ),
        (lambda v: v.update(ece_15_bins=v["ece_15_bins"] + 0.003), "ece_15_bins"),
        (lambda v: v.pop("accuracy"), "accuracy"),
        (lambda v: v["recall"].pop("Sadness"), "recall[Sadness]"),
    ],
    ids=["accuracy", "mean recall", "one class", "ece", "missing accuracy", "missing class"],
)
def test_a_figure_off_the_card_fails(measured_model, faces, lenient, capsys, edit, figure):
    path, _ = measured_model
    set_card(path, edit)
    assert verify.main(["--valid", str(faces), str(path)]) == 1
    failing = [line for line in capsys.readouterr().out.splitlines() if "FAIL:" in line]
    assert [line.split()[0] for line in failing] == [figure]


def test_within_the_tolerance_passes(measured_model, faces, lenient):
    path, _ = measured_model
    set_card(path, lambda v: v.update(accuracy=v["accuracy"] + 0.0015))
    assert verify.main(["--valid", str(faces), str(path)]) == 0


def test_an_older_card_without_mean_recall_is_checked_from_its_recalls(
    measured_model, faces, lenient
):
    path, figures = measured_model
    set_card(path, lambda v: v.pop("mean_recall"))
    rows, problems = verify.verify(path, faces)
    row = next(r for r in rows if r.figure == "mean_recall")
    assert row.card == pytest.approx(np.mean(list(figures["recall"].values())))
    assert row.problems == [] and problems == []
    # ...and a wrong per-class recall then shows in the derived mean too.
    set_card(path, lambda v: v["recall"].update(Fear=v["recall"]["Fear"] + 0.1))
    rows, _ = verify.verify(path, faces)
    failing = {r.figure for r in rows if r.problems}
    assert failing == {"mean_recall", "recall[Fear]"}


def test_a_card_without_metrics_fails(tmp_path, faces, lenient, capsys):
    path = random_model(tmp_path / "bare.onnx")
    assert verify.main(["--valid", str(faces), str(path)]) == 1
    assert "no metrics.valid block" in capsys.readouterr().out


def test_a_different_face_count_fails(measured_model, faces, lenient, capsys):
    path, _ = measured_model
    set_card(path, lambda v: v.update(faces=3191))
    assert verify.main(["--valid", str(faces), str(path)]) == 1
    assert "counts 3191 faces" in capsys.readouterr().out


def test_the_floors_fail_a_model_that_matches_its_card(measured_model, faces, monkeypatch):
    path, figures = measured_model
    floors = {**verify.FLOORS, "accuracy": (">=", figures["accuracy"] + 0.01)}
    monkeypatch.setattr(verify, "FLOORS", floors)
    rows, _ = verify.verify(path, faces)
    assert [r.figure for r in rows if r.problems and r.figure == "accuracy"] == ["accuracy"]
    assert next(r for r in rows if r.figure == "accuracy").problems == ["under its floor"]


def test_the_floors_table_is_issue_15s_targets():
    # The shipped models meet them: a regression fails CI. Issue 15's, the accuracy floor
    # raised from 83.5% to 84% with the 2026-12-06 ResNet34 (85.71%: kept within 2 points),
    # the mean recall floor from 72% to 75% with the 2026-12-07 one (79.11%; 78.11% with its
    # logits float: within 5).
    assert verify.FLOORS == {
        "accuracy": (">=", 0.84),
        "mean_recall": (">=", 0.75),
        "recall": (">=", 0.35),
        "ece_15_bins": ("<=", 0.05),
    }
    assert verify.TOLERANCE == 0.002  # 0.2 percentage points
