"""training.compact on the shipped model: the graph surgery is exact, the int8 weights stay
close, the shipped compact model is derived from the shipped float model and meets its
targets, and the site build publishes it under a content-hashed name."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from emotion.card import ModelCard
from emotion.model import softmax
from emotion.preprocess import to_input
from training.compact import (
    MAX_ACCURACY_LOSS,
    MAX_RECALL_LOSS,
    drop_flip_tta,
    meets_targets,
    quantize_weights,
    session,
)

ROOT = Path(__file__).resolve().parents[2]
FLOAT = ROOT / "models" / "emotion.onnx"
COMPACT = ROOT / "models" / "emotion-compact.onnx"


@pytest.fixture(scope="module")
def float_graph() -> onnx.ModelProto:
    return onnx.load(str(FLOAT))


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Real face crops (scikit-image's astronaut), preprocessed as the service does."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    crops = [photo.crop((150 + d, 40 + d, 300 - d, 190 - d)) for d in range(0, 40, 5)]
    crops += [c.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for c in crops]
    return to_input(crops, ModelCard.read(FLOAT.with_suffix(".json")))


def run(model, x: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"input": x})[0]


def test_dropping_flip_tta_is_exact(float_graph, faces):
    if not ModelCard.read(FLOAT.with_suffix(".json")).details.get("flip_tta"):
        pytest.fail("the shipped model has no baked flip TTA to test against")
    single = drop_flip_tta(float_graph)
    ops = [n.op_type for n in single.graph.node]
    assert "Concat" not in ops[:3] and len(ops) < len(float_graph.graph.node)
    reference = run(float_graph, faces)
    plain, mirrored = run(single, faces), run(single, faces[..., ::-1].copy())
    np.testing.assert_allclose((plain + mirrored) / 2, reference, atol=1e-4)
    assert np.abs(plain - reference).max() > 1e-3, "one pass should differ from the average"


def test_weight_only_int8_is_small_and_close(float_graph, faces):
    quantized, summary = quantize_weights(float_graph)
    assert summary["int8_weights"] > 0.99 * (summary["int8_weights"] + summary["float_weights"])
    size = len(quantized.SerializeToString())
    assert size < len(float_graph.SerializeToString()) / 3.5
    dq = [n for n in quantized.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) >= 36  # every Conv and the head's MatMuls
    reference, compact = run(float_graph, faces), run(quantized, faces)
    assert (reference.argmax(1) == compact.argmax(1)).all()
    temperature = ModelCard.read(FLOAT.with_suffix(".json")).temperature
    probs = [softmax(z.astype(np.float64) / temperature) for z in (reference, compact)]
    assert np.abs(probs[0] - probs[1]).max() < 0.05


def test_targets_rule():
    float_model = {"accuracy": 0.85, "mean_recall": 0.60}
    assert meets_targets({"accuracy": 0.85 - MAX_ACCURACY_LOSS, "mean_recall": 0.60}, float_model)
    assert not meets_targets({"accuracy": 0.8399, "mean_recall": 0.60}, float_model)
    assert not meets_targets({"accuracy": 0.85, "mean_recall": 0.60 - MAX_RECALL_LOSS - 1e-3},
                             float_model)  # fmt: skip


def test_shipped_compact_model_is_current_and_meets_targets():
    card = json.loads(COMPACT.with_suffix(".json").read_text())
    report = card["compact"]
    digest = hashlib.sha256(FLOAT.read_bytes()).hexdigest()
    assert report["source"]["sha256"] == digest, "models/emotion.onnx changed: run make compact"
    assert COMPACT.stat().st_size <= 25_000_000
    assert report["float_accuracy"] - report["accuracy"] <= MAX_ACCURACY_LOSS + 1e-9
    assert report["float_mean_recall"] - report["mean_recall"] <= MAX_RECALL_LOSS + 1e-9
    assert report["serve"] == (report["accuracy_loss_points"] <= 0.5)
    float_card = json.loads(FLOAT.with_suffix(".json").read_text())
    for field in ("classes", "input_size", "color_mode", "mean", "std", "resize"):
        assert card[field] == float_card[field], field
    assert card["metrics"]["valid"]["accuracy"] == report["accuracy"]
    assert card["metrics"]["valid"]["float_model_same_run"]["accuracy"] == report["float_accuracy"]


def test_site_build_publishes_a_hashed_copy(tmp_path):
    spec = importlib.util.spec_from_file_location("site_model", ROOT / "tools" / "site_model.py")
    site_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site_model)
    model = tmp_path / "emotion-compact.onnx"
    model.write_bytes(b"model bytes")
    model.with_suffix(".json").write_text(COMPACT.with_suffix(".json").read_text())
    out = tmp_path / "site" / "models"
    out.mkdir(parents=True)
    (out / "emotion-compact.00000000.onnx").write_bytes(b"stale")
    manifest = site_model.publish(model, out)
    digest = hashlib.sha256(b"model bytes").hexdigest()
    assert manifest["file"] == f"emotion-compact.{digest[:8]}.onnx"
    assert sorted(p.name for p in out.iterdir()) == ["compact.json", manifest["file"]]
    assert json.loads((out / "compact.json").read_text()) == manifest
    assert manifest["bytes"] == len(b"model bytes") and manifest["sha256"] == digest
    for field in ("classes", "input_size", "color_mode", "mean", "std", "resize", "temperature"):
        assert field in manifest
