"""Quantize the served model to int8 (ONNX Runtime, static QDQ) and measure what it costs.

    python -m training.ship.int8_compute --model models/emotion.onnx --train DIR --valid DIR \
        --out models/int8/emotion.onnx [--max-loss 0.005]

Activation ranges come from --faces training faces, preprocessed by the serving code.
Weights are per-channel with reduce_range (7 bits): on CPUs without VNNI (AVX2 only) ONNX
Runtime's u8s8 products can saturate, which cost 7 accuracy points on such a machine; the
2-core machines this project is measured on (AMD EPYC, Intel Xeon) have VNNI (avx512_vnni:
`python -m bench.machine` says), where --no-reduce-range is safe.
The int8 model gets its own temperature. Its card is written only when its majority-vote
accuracy on --valid is within --max-loss of the float model's (the model card's rule for
halving precision); the comparison, with single-face latency, is printed either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from PIL import Image

from emotion.card import CLASSES, ModelCard
from emotion.model import EmotionModel
from emotion.preprocess import to_input
from training.data import readers
from training.measure import metrics
from training.measure.evaluate import file_logits, labelled_faces
from training.ship import calibrate
from training.ship.float_logits import rewrite as logits_in_float

log = logging.getLogger("training")


class FaceBatches(CalibrationDataReader):
    """Training faces through the serving preprocessing, 32 at a time."""

    def __init__(self, paths: list[Path], card: ModelCard):
        self.batches = (
            {"input": to_input([Image.open(p) for p in paths[i : i + 32]], card)}
            for i in range(0, len(paths), 32)
        )

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def ends(model: Path) -> list[str]:
    """The first convolution and the last matrix product: the layers weight-only int8 keeps
    float too (training.ship.int8_weights), where int8 costs the most for the least time."""
    nodes = onnx.load(str(model), load_external_data=False).graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    products = [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")]
    return [name for name in (convs[:1] + products[-1:]) if name]


def quantize(
    model: Path,
    out: Path,
    paths: list[Path],
    card: ModelCard,
    reduce_range: bool,
    keep_ends_float: bool = False,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared))  # shape inference + graph folding
        quantize_static(
            str(prepared),
            str(out),
            FaceBatches(paths, card),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=ends(prepared) if keep_ends_float else [],
        )
    logits_in_float(out)  # rounded logits tie, and a tie goes to the first class


def coarsen_large_weights(path: Path, step: int, min_weights: int) -> int:
    """Round the int8 weights of every layer with at least `min_weights` weights (ResNet34's
    layer4 convolutions: 11.8 M of its 21.8 M at 2 M) to every `step`-th level, the scale
    multiplied by `step`, in place; returns how many weights it changed. The layer's int32
    bias is re-expressed on its new scale (input scale x weight scale), which ONNX Runtime
    checks before it fuses the layer into an int8 convolution: a bias left on the old scale
    leaves the layer computing in float, 4.7x slower for the whole network.

    Why: git stores a file zlib-compressed, and a retrain rewrites it whole. With 7-bit
    weights the ResNet34 costs git 16.5 MB a retrain; with layer4 at step 4 (33 levels, about 5
    bits) 13.6 MB, under the 15 MB a retrain may add, for 0.06 points on FER+ Valid (measured
    2026-12-07; training/README.md). The file keeps its int8 layout and computes as before.
    """
    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    produced_by = {out: node for node in model.graph.node for out in node.output}
    changed = 0
    for node in model.graph.node:
        weight = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if weight is None or weight.data_type != onnx.TensorProto.INT8:
            continue
        levels = numpy_helper.to_array(weight)
        if levels.size < min_weights:
            continue
        coarse = np.round(levels.astype(np.float32) / step).astype(np.int8)
        weight.CopyFrom(numpy_helper.from_array(coarse, weight.name))
        _rescale(initializers[node.input[1]], step)
        for bias in _biases_of(model, node.output[0], produced_by, initializers):
            values = numpy_helper.to_array(initializers[bias.input[0]]).astype(np.float64)
            rounded = np.round(values / step).astype(np.int32)
            initializers[bias.input[0]].CopyFrom(numpy_helper.from_array(rounded, bias.input[0]))
            _rescale(initializers[bias.input[1]], step)
        changed += levels.size
    onnx.save(model, str(path))
    return changed


def _rescale(scale: onnx.TensorProto, step: int) -> None:
    wider = numpy_helper.to_array(scale).astype(np.float32) * np.float32(step)
    scale.CopyFrom(numpy_helper.from_array(wider, scale.name))


def _biases_of(model, weight_output: str, produced_by: dict, initializers: dict) -> list:
    """The DequantizeLinear nodes of the int32 biases of the layers that read this weight."""
    found = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            if node.input[1] != weight_output:
                continue
            source = produced_by.get(node.input[2])
            if source is not None and source.op_type == "DequantizeLinear":
                values = initializers.get(source.input[0])
                if values is not None and values.data_type == onnx.TensorProto.INT32:
                    found.append(source)
    return found


def git_bytes(path: Path) -> int:
    """What one version of the file adds to a git repository: git stores an object as a
    header and the content, zlib-compressed at the default level (packed: the same, or a
    delta against another version)."""
    content = path.read_bytes()
    return len(zlib.compress(b"blob %d\0" % len(content) + content))


def git_mb(path: Path) -> float:
    return round(git_bytes(path) / 1e6, 2)


def recalls(prefix: str, probs: np.ndarray, labels: np.ndarray) -> dict:
    """Mean per-class recall and each class's: int8 rounding moves the rare classes first."""
    matrix = metrics.confusion(probs, labels, len(CLASSES))
    per_class = zip(CLASSES, metrics.recall_per_class(matrix), strict=True)
    return {
        f"{prefix}_mean_recall": round(metrics.mean_recall(matrix), 4),
        f"{prefix}_recall": {c: round(float(r), 4) for c, r in per_class},
    }


def single_face_ms(model: EmotionModel, image: Image.Image, repeats: int = 200) -> float:
    """Median time of one predict([image]), as the service calls it."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict([image])
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--train", type=Path, required=True, help="faces for activation ranges")
    p.add_argument("--valid", type=Path, required=True, help="faces to compare accuracy on")
    p.add_argument("--out", type=Path, required=True, help="the int8 ONNX file (card beside)")
    p.add_argument("--faces", type=int, default=512, help="calibration faces, drawn at random")
    p.add_argument("--max-loss", type=float, default=0.005, help="accuracy, as a fraction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-reduce-range", action="store_true", help="8-bit weights (VNNI CPUs)")
    p.add_argument(
        "--keep-ends-float", action="store_true", help="first convolution and last layer in float"
    )
    p.add_argument(
        "--coarse-step", type=int, default=4,
        help="layers of at least --coarse-min-weights weights keep every Nth int8 level (1: off)",
    )  # fmt: skip
    p.add_argument("--coarse-min-weights", type=int, default=2_000_000)
    args = p.parse_args(argv)

    served = EmotionModel(args.model)
    train, _ = readers.read_dataset(args.train)
    pick = np.random.default_rng(args.seed).permutation(len(train))[: args.faces]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ranges_from = [train[i].path for i in pick]
    quantize(
        args.model, args.out, ranges_from, served.card, not args.no_reduce_range,
        args.keep_ends_float,
    )  # fmt: skip
    coarsened = (
        coarsen_large_weights(args.out, args.coarse_step, args.coarse_min_weights)
        if args.coarse_step > 1
        else 0
    )
    args.out.with_suffix(".json").write_text(args.model.with_suffix(".json").read_text())
    int8 = EmotionModel(args.out)

    faces, labels = labelled_faces(args.valid)
    paths = [f.path for f in faces]
    float_logits, int8_logits = file_logits(served, paths), file_logits(int8, paths)
    fitted = calibrate.calibrate(int8_logits, labels)
    face = Image.open(paths[0])
    result = {
        "method": "ONNX Runtime static QDQ, per-channel int8 weights"
        f"{'' if args.no_reduce_range else ' (reduce_range)'}, uint8 activations, ranges "
        f"from {len(pick)} training faces, logits float (training.ship.float_logits)"
        f"{'; first convolution and last layer float' if args.keep_ends_float else ''}"
        + (
            f"; the {coarsened:,} weights of layers with >= {args.coarse_min_weights:,} on "
            f"every {args.coarse_step}th int8 level"
            if coarsened
            else ""
        ),
        "faces": len(labels),
        "float_accuracy": round(metrics.accuracy(float_logits, labels), 4),
        "int8_accuracy": round(metrics.accuracy(int8_logits, labels), 4),
        **recalls("float", served.probabilities(float_logits), labels),
        **recalls("int8", int8.probabilities(int8_logits), labels),
        "top1_agreement": round(float((float_logits.argmax(1) == int8_logits.argmax(1)).mean()), 4),
        "int8_temperature": fitted["temperature"],
        "int8_ece_15_bins": fitted["ece_15_bins_after"],
        "float_ms_single_face": single_face_ms(served, face),
        "int8_ms_single_face": single_face_ms(int8, face),
        "float_mb": round(args.model.stat().st_size / 1e6, 1),
        "int8_mb": round(args.out.stat().st_size / 1e6, 1),
        "git_mb": git_mb(args.out),
    }
    print(json.dumps(result, indent=2))
    loss = result["float_accuracy"] - result["int8_accuracy"]
    if loss > args.max_loss:
        log.error("int8 loses %.2f points (limit %.2f): not kept", loss * 100, args.max_loss * 100)
        args.out.unlink()
        args.out.with_suffix(".json").unlink()
        return 1
    details = {**int8.card.details, "quantization": result}
    card = dataclasses.replace(int8.card, temperature=fitted["temperature"], details=details)
    card.write(args.out.with_suffix(".json"))
    log.info("kept %s (%.1f MB) and its card", args.out, result["int8_mb"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
