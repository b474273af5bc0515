"""Rebuilding PyTorch weights from an exported graph whose BNs the exporter folded away."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training import onnx_weights
from training.export import export_onnx, exported_graph
from training.model import build_model


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
