"""training.ship.int8_weights on the shipped model: the graph surgery is exact, the int8 weights stay
close and fold back to float exactly, the shipped file is the weight-only int8 one and meets
its targets, and the site build publishes it under a content-hashed name."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from emotion.card import ModelCard
from emotion.model import softmax
from emotion.preprocess import to_input
from training.fit.onnx_weights import session, to_float
from training.ship.int8_weights import (
    MAX_ACCURACY_LOSS,
    MAX_RECALL_LOSS,
    drop_flip_tta,
    meets_targets,
    quantize_weights,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion.onnx"  # weight-only int8, as git keeps it
CARD = MODEL.with_suffix(".json")


@pytest.fixture(scope="module")
def shipped() -> onnx.ModelProto:
    return onnx.load(str(MODEL))


@pytest.fixture(scope="module")
def float_graph(shipped) -> onnx.ModelProto:
    """The float network the shipped file stores: what a float export of it would be."""
    return to_float(shipped)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Real face crops (scikit-image's astronaut), preprocessed as the service does."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    crops = [photo.crop((150 + d, 40 + d, 300 - d, 190 - d)) for d in range(0, 40, 5)]
    crops += [c.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for c in crops]
    return to_input(crops, ModelCard.read(CARD))


def run(model, x: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"input": x})[0]


def test_dropping_flip_tta_is_exact(float_graph, faces):
    if not ModelCard.read(CARD).details.get("flip_tta"):
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
    assert summary["int8_weights"] > 0.97 * (summary["int8_weights"] + summary["float_weights"])
    size = len(quantized.SerializeToString())
    assert size < len(float_graph.SerializeToString()) / 3.5
    dq = {n.output[0] for n in quantized.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in quantized.graph.node if n.op_type == "Conv"]
    heads = [n for n in quantized.graph.node if n.op_type == "MatMul"]
    # every Conv but the first is int8; the first and the head's MatMuls stay float
    assert [n.input[1] in dq for n in convs] == [False] + [True] * (len(convs) - 1)
    assert heads and not any(n.input[1] in dq for n in heads)
    everything, _ = quantize_weights(float_graph, ())
    assert sum(n.op_type == "DequantizeLinear" for n in everything.graph.node) == len(convs) + 2
    reference, compact = run(float_graph, faces), run(quantized, faces)
    assert (reference.argmax(1) == compact.argmax(1)).all()
    temperature = ModelCard.read(CARD).temperature
    probs = [softmax(z.astype(np.float64) / temperature) for z in (reference, compact)]
    assert np.abs(probs[0] - probs[1]).max() < 0.05


def test_kept_layers_are_stored_float16_and_cast_back(float_graph, faces):
    halved, summary = quantize_weights(float_graph)
    inits = {t.name: t for t in halved.graph.initializer}
    casts = [n for n in halved.graph.node if n.op_type == "Cast"]
    convs = [n for n in halved.graph.node if n.op_type == "Conv"]
    heads = [n for n in halved.graph.node if n.op_type == "MatMul"]
    # the first conv's and the head's weights come out of a Cast of a float16 initializer
    assert {c.output[0] for c in casts} == {convs[0].input[1]} | {n.input[1] for n in heads}
    assert all(inits[c.input[0]].data_type == onnx.TensorProto.FLOAT16 for c in casts)
    assert summary["float16_weights"] == sum(numpy_helper.to_array(inits[c.input[0]]).size
                                             for c in casts)  # fmt: skip
    wide, _ = quantize_weights(float_graph, kept_dtype="float32")
    assert not [n for n in wide.graph.node if n.op_type == "Cast"]
    assert len(wide.SerializeToString()) - len(halved.SerializeToString()) > 1_000_000
    # folding restores float32 weights within float16's rounding, and the function with them
    weights = {t.name: numpy_helper.to_array(t) for t in float_graph.graph.initializer}
    folded = {t.name: numpy_helper.to_array(t) for t in to_float(halved).graph.initializer}
    for cast in casts:
        name = cast.output[0]
        assert folded[name].dtype == np.float32
        np.testing.assert_allclose(folded[name], weights[name], rtol=2**-11, atol=1e-7)
    halved_logits, wide_logits = run(halved, faces), run(wide, faces)
    # float16 keeps 11 bits (2**-11 = 4.9e-4 relative) of the first conv's and the head's
    # weights: the logits move by about that much of the largest (6.2e-4 on the 2026-12-07 model)
    assert np.abs(halved_logits - wide_logits).max() <= 1e-3 * np.abs(wide_logits).max()
    assert (halved_logits.argmax(1) == wide_logits.argmax(1)).all()


def test_targets_rule():
    float_model = {"accuracy": 0.85, "mean_recall": 0.60}
    assert meets_targets({"accuracy": 0.85 - MAX_ACCURACY_LOSS, "mean_recall": 0.60}, float_model)
    assert not meets_targets({"accuracy": 0.8399, "mean_recall": 0.60}, float_model)
    assert not meets_targets({"accuracy": 0.85, "mean_recall": 0.60 - MAX_RECALL_LOSS - 1e-3},
                             float_model)  # fmt: skip


def test_int8_weights_fold_back_to_the_float_weights(float_graph, shipped, faces):
    quantized, _ = quantize_weights(float_graph)
    again = to_float(quantized)
    assert not [n for n in again.graph.node if n.op_type == "DequantizeLinear"]
    weights = {t.name: numpy_helper.to_array(t) for t in float_graph.graph.initializer}
    folded = {t.name: numpy_helper.to_array(t) for t in again.graph.initializer}
    for name, weight in weights.items():
        step = np.abs(weight).max(axis=tuple(range(1, weight.ndim)), keepdims=True) / 127
        assert np.all(np.abs(folded[name] - weight) <= step / 2 + 1e-7), name  # one rounding
    # ...and ONNX Runtime's own folding at load (the service's) computes the same function
    np.testing.assert_allclose(run(float_graph, faces), run(shipped, faces), rtol=0, atol=1e-3)


def test_the_shipped_model_computes_in_int8_and_meets_its_targets(shipped):
    """Since 2026-12-06 the served ResNet34 is static int8 (training.ship.int8_compute): int8
    weights and activations, its accuracy within int8_compute's limit of its float export."""
    card = json.loads(CARD.read_text())
    report = card["quantization"]
    assert MODEL.stat().st_size <= 25_000_000
    assert report["int8_mb"] == round(MODEL.stat().st_size / 1e6, 1)
    ops = [n.op_type for n in shipped.graph.node]
    assert ops.count("QuantizeLinear") > 36  # every activation, not only the weights
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in shipped.graph.initializer) >= 36
    assert report["float_accuracy"] - report["int8_accuracy"] <= 0.005 + 1e-9
    assert report["float_mean_recall"] - report["int8_mean_recall"] <= MAX_RECALL_LOSS + 1e-9
    # the served figures are the int8 file's own
    assert card["metrics"]["valid"]["accuracy"] == report["int8_accuracy"]
    assert card["metrics"]["valid"]["mean_recall"] == report["int8_mean_recall"]
    assert card["name"] == "emotion-resnet34" and "framing" in card and "compact" not in card


def test_site_build_publishes_a_hashed_copy(tmp_path):
    spec = importlib.util.spec_from_file_location("site_model", ROOT / "tools" / "site_model.py")
    site_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site_model)
    model = tmp_path / "emotion.onnx"
    model.write_bytes(b"model bytes")
    model.with_suffix(".json").write_text(CARD.read_text())
    out = tmp_path / "site" / "models"
    out.mkdir(parents=True)
    (out / "emotion.00000000.onnx").write_bytes(b"stale")
    manifest = site_model.publish(model, out)
    digest = hashlib.sha256(b"model bytes").hexdigest()
    assert manifest["file"] == f"emotion.{digest[:8]}.onnx"
    assert sorted(p.name for p in out.iterdir()) == ["compact.json", manifest["file"]]
    assert json.loads((out / "compact.json").read_text()) == manifest
    assert manifest["bytes"] == len(b"model bytes") and manifest["sha256"] == digest
    for field in ("classes", "input_size", "color_mode", "mean", "std", "resize", "temperature"):
        assert field in manifest
