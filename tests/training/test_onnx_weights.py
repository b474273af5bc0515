"""Rebuilding PyTorch weights from an exported graph whose BNs the exporter folded away."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from training.fit import onnx_weights
from training.fit.export import export_onnx, exported_graph
from training.fit.model import build_model


def test_module_names_from_the_exporters_node_names():
    assert onnx_weights.module_of("/model/model.0/model.0.0/Conv") == "0.0"
    assert (
        onnx_weights.module_of("/model/model.0/model.0.4/model.0.4.0/conv1/Conv") == "0.4.0.conv1"
    )
    node = "/model/model.0/model.0.7/model.0.7.0/downsample/downsample.0/Conv"
    assert onnx_weights.module_of(node) == "0.7.0.downsample.0"
    assert onnx_weights.bn_of("0.4.0.conv2") == "0.4.0.bn2"
    assert onnx_weights.bn_of("0.0") == "0.1"
    assert onnx_weights.bn_of("0.7.0.downsample.0") == "0.7.0.downsample.1"


def test_a_rebuilt_network_computes_the_exported_function(tmp_path: Path):
    torch.manual_seed(0)
    original = build_model()
    with torch.no_grad():  # trained-looking BNs, so folding them really changes the convs
        for m in original.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    path = tmp_path / "m.onnx"
    export_onnx(exported_graph(original.eval(), True, None), 48, path)
    faces = np.random.default_rng(0).normal(size=(64, 1, 48, 48)).astype(np.float32)

    rebuilt = onnx_weights.rebuild(path, faces)
    again = tmp_path / "again.onnx"
    export_onnx(exported_graph(rebuilt, True, None), 48, again)
    assert onnx_weights.relative_difference(path, again, faces[:16]) < 1e-5
    # Training-mode BN normalises by the batch's own statistics; on the faces the statistics
    # came from, the body computes what it does in eval mode (the head has dropout).
    body, x = rebuilt[0], torch.from_numpy(faces)
    with torch.no_grad():
        eval_mode = body.eval()(x)
        train_mode = body.train()(x)
    assert (train_mode - eval_mode).abs().max() < 1e-3 * eval_mode.abs().max()


OFFSET = [0.1 * i - 0.3 for i in range(8)]


def export_with_offset(tmp_path: Path, seed: int) -> Path:
    """A ResNet34 with trained-looking BNs (identical folded biases would be deduplicated),
    exported with the mirror TTA and a logit offset baked in, as the shipped model is."""
    torch.manual_seed(seed)
    original = build_model().eval()
    with torch.no_grad():
        for m in original.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.2, 0.2)
    path = tmp_path / "float.onnx"
    export_onnx(exported_graph(original, True, OFFSET), 48, path)
    return path


def test_a_weight_only_int8_export_with_a_prior_offset_rebuilds_exactly(tmp_path: Path):
    """What git keeps: weights stored int8 (training.ship.int8_weights) and a logit offset baked in
    (LogitOffset wraps the names of the head's BNs once more). The rebuilt network computes
    the int8 file's function (its weights folded to float) in float32."""
    from training.ship.int8_weights import quantize_weights

    path = export_with_offset(tmp_path, seed=1)
    stored = tmp_path / "int8.onnx"
    onnx.save(quantize_weights(onnx.load(str(path)))[0], str(stored))
    faces = np.random.default_rng(1).normal(size=(32, 1, 48, 48)).astype(np.float32)

    rebuilt = onnx_weights.rebuild(stored, faces)
    again = tmp_path / "again.onnx"
    export_onnx(exported_graph(rebuilt, True, OFFSET), 48, again)
    assert onnx_weights.relative_difference(stored, again, faces[:16]) < 1e-5
    assert onnx_weights.relative_difference(path, stored, faces[:16]) > 1e-6  # int8 is not float


def test_the_shipped_weights_are_rebuilt_once_per_model_file(tmp_path: Path, monkeypatch):
    """training.fit.shipped: rebuilt into a cache named by the ONNX file's digest, checked, with
    the card and the file beside; read from there the next time; a clear stop without faces."""
    import json
    import shutil

    import pytest
    from PIL import Image

    from emotion.card import ModelCard
    from training.fit import shipped
    from training.fit.export import prior_offset

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setattr(shipped, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(shipped, "FERPLUS_TRAIN", tmp_path / "no-ferplus")
    model = tmp_path / "models" / "emotion.onnx"
    model.parent.mkdir()
    shutil.copyfile(root / "models" / "emotion.json", model.with_suffix(".json"))
    card = ModelCard.read(model.with_suffix(".json"))
    adjustment = card.details["logit_adjustment"]
    offset = prior_offset(adjustment["prior"], adjustment["prior_weight"])
    torch.manual_seed(2)
    net = build_model().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.bias.uniform_(-0.2, 0.2)
    export_onnx(exported_graph(net, True, offset), card.input_size, model)
    faces = tmp_path / "faces" / "happy"
    faces.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(faces / f"{i}.png")

    with pytest.raises(SystemExit, match="needs real faces"):
        shipped.weights(model)
    weights = shipped.weights(model, faces.parent)
    assert weights.parent == tmp_path / "cache" / shipped.digest(model)[:16]
    assert weights.with_suffix(".json").is_file() and weights.with_suffix(".onnx").is_file()
    report = json.loads((weights.parent / "rebuilt.json").read_text())
    assert report["relative_diff"] < 1e-3 and report["sha256_onnx"] == shipped.digest(model)

    def no_rebuild(*args):
        raise AssertionError("rebuilt again")

    monkeypatch.setattr(onnx_weights, "rebuild_file", no_rebuild)
    assert shipped.weights(model) == weights  # cached: no faces needed any more

    # Each call copies today's card; a fine-tune started beside this one must never read
    # half of it: it is written under another name and renamed.
    written = []
    copy = shutil.copyfile
    monkeypatch.setattr(
        shutil, "copyfile", lambda src, dst: written.append(Path(dst)) or copy(src, dst)
    )
    assert shipped.weights(model) == weights
    assert written and weights.with_suffix(".json") not in written
    assert not list(weights.parent.glob("*.partial"))
    assert json.loads(weights.with_suffix(".json").read_text()) == json.loads(
        model.with_suffix(".json").read_text()
    )


def test_a_static_int8_export_rebuilds_the_network_its_weights_are(tmp_path: Path):
    """A file that computes in int8 (training.ship.int8_compute: every activation quantized too,
    and the ReLUs its quantizer folds into uint8 ranges that start at 0) rebuilds into the
    float network of its int8 weights: what make finetune and make export start from."""
    from PIL import Image

    from emotion.card import CLASSES, ModelCard
    from training.ship.int8_compute import quantize

    path = export_with_offset(tmp_path, seed=2)
    rng = np.random.default_rng(2)
    images = []
    for i in range(32):
        images.append(tmp_path / f"face{i}.png")
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(images[-1])
    card = ModelCard("t", "1", CLASSES, 48, "L", 0.5, 0.25, "bilinear")
    stored = tmp_path / "int8.onnx"
    quantize(path, stored, images, card, reduce_range=True)
    graph = onnx.load(str(stored)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 36  # activations too
    assert not any(n.op_type == "Relu" for n in graph.node)  # folded into the uint8 ranges
    faces = rng.normal(size=(32, 1, 48, 48)).astype(np.float32)

    rebuilt = onnx_weights.rebuild(stored, faces)
    again = tmp_path / "again.onnx"
    export_onnx(exported_graph(rebuilt, True, OFFSET), 48, again)
    # float32 rounding of re-folded BNs over 7-bit weights; the shipped check allows 1e-3
    assert onnx_weights.relative_difference(stored, again, faces[:16]) < 2e-4
    assert onnx_weights.relative_difference(path, stored, faces[:16]) < 0.05  # 7-bit weights
