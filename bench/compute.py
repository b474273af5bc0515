"""Our model against this CPU's limit: FLOPs counted from the ONNX graph, measured ms per
inference, and the matrix throughput a plain large float32 matmul reaches here."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from emotion.model import EmotionModel
from emotion.preprocess import to_input

MAC_OPS = ("Conv", "MatMul", "Gemm")


def onnx_flops(path: Path, batch: np.ndarray) -> int:
    """Conv and Gemm/MatMul MACs x2, with every shape taken from a real run of the graph on
    `batch` (so whatever the graph does inside, such as the mirror TTA doubling the batch,
    is counted as it runs)."""
    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    wanted = {
        name
        for node in graph.node
        if node.op_type in MAC_OPS
        for name in [*node.input[:2], node.output[0]]
        if name not in weights
    }
    present = {out.name for out in graph.output}
    graph.output.extend(onnx.ValueInfoProto(name=n) for n in sorted(wanted - present))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: batch})
    shapes = {**weights, **{n: v.shape for n, v in zip(names, values, strict=True)}}

    macs = 0
    for node in graph.node:
        if node.op_type not in MAC_OPS:
            continue
        a, b, out = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
        if node.op_type == "Conv":
            macs += int(np.prod(out)) * int(np.prod(b[1:]))  # weight: Cout, Cin/groups, kh, kw
        else:
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            macs += int(np.prod(out)) * int(a[0] if trans_a else a[-1])
    return 2 * macs


def model_figures(path: Path, face, runs: int) -> dict:
    """ms per inference of the served session (as the service builds it) on one face."""
    model = EmotionModel(path)
    batch = to_input([face], model.card)
    feed = {model.input_name: batch}
    for _ in range(3):
        model.session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
    flops = onnx_flops(path, batch)
    ms = float(np.median(times))
    side = model.card.input_size
    return {
        "flops": flops,
        "flops_method": "ONNX graph: Conv and MatMul/Gemm MACs x2, shapes from a run on one "
        f"1x1x{side}x{side} face (the mirror TTA inside runs batch 2: counted)",
        "input": f"1x1x{side}x{side}",
        "infer_ms_p50": ms,
        "runs": runs,
        "gflops_per_s": flops / ms / 1e6,
    }


def matmul_gflops(size: int, repeats: int) -> dict:
    """GFLOP/s of a float32 size x size matmul through numpy's BLAS (all cores)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - started) / 1e9)
    return {"size": size, "repeats": repeats, "best": max(rates), "median": float(np.median(rates))}
