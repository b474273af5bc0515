"""Rebuild the PyTorch weights of an exported model (git keeps only the ONNX file).

    python -m training.fit.onnx_weights --model models/emotion.onnx --faces DIR [--out PATH]

(training.fit.shipped runs this once per shipped model and caches the result under runs/.)
A weight-only int8 file (training.ship.int8_weights) is read as runtimes run it: every
DequantizeLinear folded into float weights first.

The ONNX exporter folds every body BatchNorm into the convolution before it, so the original
BN parameters are gone. Each body conv gets the folded weight; its BN is set from the conv
output's own per-channel statistics on real faces (mean m, variance v): running stats m and v,
weight sqrt(v + eps), bias m + the folded bias. In eval mode that is exactly the exported
function, and training-mode BN (batch statistics) starts close to it, so the weights can be
fine-tuned. The head's BNs and linears are copied as they are. The result is re-exported and
compared with the original graph before it is written (float16, like export's).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from PIL import Image
from torch import nn

from emotion.card import ModelCard
from emotion.preprocess import to_input
from training.data import readers
from training.fit.export import (
    card_offset,
    export_onnx,
    exported_graph,
    load_shipped,
    save_weights,
)
from training.fit.model import build_model

log = logging.getLogger("training")
# Largest logit difference allowed, relative to the largest logit: float16 weights round the
# logits (measured: 0.06 on logits up to 107, 99.9% top-1 agreement; float32 gives 1e-5).
PARITY = 2e-3


def module_of(conv_node: str) -> str:
    """'/model/model.0/model.0.4/model.0.4.0/conv1/Conv' -> '0.4.0.conv1';
    '.../model.0.7.0/downsample/downsample.0/Conv' -> '0.7.0.downsample.0'."""
    parts = conv_node.strip("/").split("/")[:-1]
    last_model = max(i for i, p in enumerate(parts) if p.startswith("model."))
    base = parts[last_model].removeprefix("model.")
    rest = parts[last_model + 1 :]
    return f"{base}.{rest[-1]}" if rest else base


def unwrapped(name: str) -> str:
    """An initializer's name without the export wrappers' "model." prefixes (nor the suffix
    static int8's quantizer gives a weight it dequantizes)."""
    name = name.removesuffix("_DequantizeLinear_Output")
    while name.startswith("model."):
        name = name.removeprefix("model.")
    return name


def bn_of(conv: str) -> str:
    """The BatchNorm right after a conv in fastai's ResNet34 body."""
    if conv.endswith((".conv1", ".conv2")):
        return conv[:-5] + "bn" + conv[-1]
    prefix, index = conv.rsplit(".", 1)
    return f"{prefix}.{int(index) + 1}"  # stem 0.0 -> 0.1; downsample.0 -> downsample.1


def without_activation_qdq(graph: onnx.GraphProto) -> None:
    """Static int8 (training.ship.int8_compute) also quantizes every activation: a
    QuantizeLinear -> DequantizeLinear pair on each, and its quantizer drops a ReLU whose
    output is quantized to uint8 from 0 (the clamp at 0 does its work). Each pair becomes that
    ReLU where its range starts at 0, else goes: the graph then computes in float on its
    (still int8-stored) weights, the network the weights are."""
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    renamed: dict[str, str] = {}
    for node in list(graph.node):
        if node.op_type != "DequantizeLinear" or node.input[0] in inits:
            continue
        quantize = producer.get(node.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear":
            continue
        zero = inits.get(quantize.input[2]) if len(quantize.input) > 2 else None
        clamps = (
            zero is not None
            and zero.data_type == onnx.TensorProto.UINT8
            and not np.any(numpy_helper.to_array(zero))
        )
        at = list(graph.node).index(node)
        graph.node.remove(node)
        if clamps or node.output[0] in outputs:  # a graph output keeps its name
            op = "Relu" if clamps else "Identity"
            graph.node.insert(at, onnx.helper.make_node(op, [quantize.input[0]], node.output))
        else:
            renamed[node.output[0]] = quantize.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    unread = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.output[0] not in used]
    for node in unread:
        graph.node.remove(node)


def to_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """The inverse of training.ship.int8_weights' storage (and int8_compute's): every weight
    DequantizeLinear (and float16 Cast) folded into a float initializer, as runtimes do at
    load, and static int8's activation quantization taken out (rebuild reads weights from
    this)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    without_activation_qdq(graph)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    folded, used = [], set()
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in inits for i in node.input):
            continue
        q, scale = inits[node.input[0]], inits[node.input[1]]
        zero = inits[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale, q.dtype)
        shape = [1] * q.ndim  # a per-channel scale lies along `axis`; a scalar's is ()
        if scale.ndim:  # a bias (1-D) lies along its only axis
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1 if q.ndim > 1 else 0)
            shape[axis] = scale.size
        weight = (q.astype(np.float32) - zero.astype(np.float32).reshape(shape)) * (
            scale.reshape(shape)
        )
        folded.append((node, numpy_helper.from_array(weight.astype(np.float32), node.output[0])))
        used.update(node.input)
    for node in graph.node:  # a weight stored float16 (int8_weights' kept layers) -> float32
        if node.op_type == "Cast" and node.input[0] in inits:
            weight = inits[node.input[0]].astype(np.float32)
            folded.append((node, numpy_helper.from_array(weight, node.output[0])))
            used.add(node.input[0])
    for node, _ in folded:
        graph.node.remove(node)
    rest = [t for t in graph.initializer if t.name not in used]
    del graph.initializer[:]
    graph.initializer.extend(rest + [tensor for _, tensor in folded])
    return model


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    """The network the file's weights are, in float: weight DequantizeLinears folded once, at
    load, and a static int8 file's activation quantization taken out (what the rebuilt
    PyTorch weights compute)."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")  # fold weights at load
    if isinstance(model, onnx.ModelProto):
        model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's untouched
    else:
        model = onnx.load(str(model))
    without_activation_qdq(model.graph)
    data = model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def rebuild(model_path: Path, faces: np.ndarray) -> nn.Module:
    graph = to_float(onnx.load(str(model_path))).graph
    values = {i.name: numpy_helper.to_array(i).copy() for i in graph.initializer}
    convs = {module_of(n.name): (values[n.input[1]], values[n.input[2]])
             for n in graph.node if n.op_type == "Conv"}  # fmt: skip
    model = build_model().eval()
    modules = dict(model.named_modules())
    if len(convs) != sum(isinstance(m, nn.Conv2d) for m in modules.values()):
        raise ValueError(f"{model_path}: its convolutions do not match ResNet34's")
    with torch.no_grad():
        for name, (weight, bias) in convs.items():  # first: BN = + folded bias, exactly
            modules[name].weight.copy_(torch.from_numpy(weight))
            bn = modules[bn_of(name)]
            bn.reset_parameters()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.bias.copy_(torch.from_numpy(bias))
        # The head's two BNs, by name: "model.1.2.weight" under FlipAverage, one more
        # "model." under LogitOffset (an export with a prior weight).
        named = {unwrapped(name): value for name, value in values.items()}
        for key, tensor in model.state_dict().items():
            if key in named:
                tensor.copy_(torch.from_numpy(named[key]))
        matmuls = [n.input[1] for n in graph.node if n.op_type == "MatMul"]
        linears = [m for m in model[1] if isinstance(m, nn.Linear)]
        for linear, name in zip(linears, matmuls, strict=True):
            linear.weight.copy_(torch.from_numpy(values[name]).T)
        statistics = conv_statistics(model, [modules[c] for c in convs], faces)
        for (name, (_, bias)), (mean, var) in zip(convs.items(), statistics, strict=True):
            bn = modules[bn_of(name)]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mean + torch.from_numpy(bias))
    return model


def conv_statistics(model: nn.Module, convs: list[nn.Module], faces: np.ndarray):
    """Per-channel mean and variance of each conv's output over `faces`."""
    seen: dict[int, torch.Tensor] = {}
    hooks = [conv.register_forward_hook(lambda m, i, out, k=k: seen.__setitem__(k, out))
             for k, conv in enumerate(convs)]  # fmt: skip
    model(torch.from_numpy(faces))
    for hook in hooks:
        hook.remove()
    return [(seen[k].mean(dim=(0, 2, 3)), seen[k].var(dim=(0, 2, 3), unbiased=False))
            for k in range(len(convs))]  # fmt: skip


def relative_difference(a: Path, b: Path, faces: np.ndarray) -> float:
    """Largest logit difference between two graphs over the largest logit."""
    outputs = [session(p).run(None, {"input": faces})[0] for p in (a, b)]
    return float(np.abs(outputs[0] - outputs[1]).max() / np.abs(outputs[0]).max())


def rebuild_file(model_path: Path, faces_dir: Path, out: Path, count: int = 2048) -> dict:
    """Rebuild, write float16 weights to `out`, re-export them and compare logits with the
    model's own (256 faces); SystemExit, and nothing left at `out`, when they differ."""
    card = ModelCard.read(model_path.with_suffix(".json"))
    faces, _ = readers.read_dataset(faces_dir)
    chosen = np.random.default_rng(0).permutation(len(faces))[:count]
    batch = to_input([Image.open(faces[i].path) for i in chosen], card)
    model = rebuild(model_path, batch)

    weights = save_weights(model, out)
    check = out.with_name(out.name + ".check.onnx")
    flip_tta = bool(card.details.get("flip_tta", True))
    offset = card_offset(card.details.get("logit_adjustment") or {})
    export_onnx(exported_graph(load_shipped(out), flip_tta, offset), card.input_size, check)
    difference = relative_difference(model_path, check, batch[:256])
    check.unlink()
    if difference > PARITY:
        out.unlink()
        raise SystemExit(f"rebuilt weights differ from {model_path} by {difference:.2e}")
    log.info("rebuilt %s: largest relative logit difference %.2e (256 faces)", out, difference)
    return {**weights, "rebuilt_from": model_path.name, "relative_diff": difference,
            "bn_statistics_faces": len(chosen)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--faces", type=Path, required=True, help="real faces for BN statistics")
    p.add_argument("--count", type=int, default=2048)
    p.add_argument("--out", type=Path, help="default: the model's .pth")
    args = p.parse_args(argv)
    out = args.out or args.model.with_suffix(".pth")
    print(json.dumps(rebuild_file(args.model, args.faces, out, args.count)))


if __name__ == "__main__":
    main()
