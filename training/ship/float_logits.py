"""Keep a static-int8 model's logits in float: the last matrix product's output and what follows.

    python -m training.ship.float_logits models/emotion.onnx [--out other.onnx] [--valid DIR]

ONNX Runtime's static QDQ quantization (training.ship.int8_compute) rounds every activation
to 256 levels, the logits too: the shipped ResNet34's came in steps of 0.07, and 34 of FER+
Valid's 3,191 faces had two classes tied for the top. A tie is then decided by the classes'
order (the first wins), not by the network: Disgust, second of the eight, read 21 of its 25
faces, 2 of them by such ties, and Contempt and Fear, the last two, lost theirs. What follows
the last matrix product (the mirror average, the logit adjustment's offset) is a handful of
additions on eight numbers: computed in float it costs nothing and leaves no ties. The
weights and every other layer are untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import onnx

from emotion.card import CLASSES
from emotion.model import EmotionModel
from training.measure import metrics
from training.measure.evaluate import file_logits, labelled_faces


def float_logits(model: onnx.ModelProto) -> int:
    """In place: every QuantizeLinear -> DequantizeLinear pair on a tensor computed after the
    graph's last MatMul/Gemm is removed (its readers read the float tensor). Returns how many
    pairs were removed."""
    nodes = list(model.graph.node)
    products = [i for i, n in enumerate(nodes) if n.op_type in ("MatMul", "Gemm")]
    if not products:
        return 0
    position = {out: i for i, n in enumerate(nodes) for out in n.output}
    quantizers = {n.output[0]: n for n in nodes if n.op_type == "QuantizeLinear"}
    bypass: dict[str, str] = {}  # a DequantizeLinear's output -> the float tensor it rounded
    dropped: set[int] = set()
    for n in nodes:
        q = quantizers.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if q is None or position.get(q.input[0], -1) < products[-1]:
            continue  # not a rounding of a tensor computed after the last product
        bypass[n.output[0]] = q.input[0]
        dropped |= {id(q), id(n)}
    kept = [n for n in nodes if id(n) not in dropped]
    outputs = {o.name for o in model.graph.output}
    for n in kept:
        n.input[:] = [bypass.get(name, name) for name in n.input]
    for name, source in bypass.items():
        if name in outputs:  # the graph's output keeps its name: its producer writes it
            for n in kept:
                n.output[:] = [name if out == source else out for out in n.output]
                n.input[:] = [name if x == source else x for x in n.input]
    used = {x for n in kept for x in n.input}
    model.graph.ClearField("node")
    model.graph.node.extend(kept)
    unused = [t for t in model.graph.initializer if t.name not in used]
    for tensor in unused:  # the removed pairs' scales and zero points
        model.graph.initializer.remove(tensor)
    return len(dropped) // 2


def rewrite(path: Path, out: Path | None = None) -> int:
    model = onnx.load(str(path))
    pairs = float_logits(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out or path))
    return pairs


NOTE = (
    "the last matrix product's output and what follows (mirror average, offset) computed "
    "in float: rounded logits tied, and a tie went to the first class (training.ship."
    "float_logits)"
)
MEASURED = ("int8_accuracy", "int8_mean_recall", "int8_recall")


def measured(model: Path, valid: Path) -> dict:
    """The int8 file's figures as int8_compute records them, measured again on `valid`."""
    faces, labels = labelled_faces(valid)
    served = EmotionModel(model)
    probs = served.probabilities(file_logits(served, [f.path for f in faces]))
    figures = metrics.scores(probs, labels, CLASSES)
    values = (figures["accuracy"], figures["mean_recall"], figures["recall"])
    return dict(zip(MEASURED, values, strict=True))


def note_in_card(card_path: Path, pairs: int, figures: dict) -> None:
    """The card's `quantization` says the logits are float, with its int8 figures measured
    again (`figures`) and the rounded logits' kept beside the note."""
    card = json.loads(card_path.read_text())
    report = card.setdefault("quantization", {})
    before = {k: report[k] for k in MEASURED if k in report}
    report.update(figures)
    report["float_logits"] = {"note": NOTE, "pairs_removed": pairs, "rounded_logits": before}
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, help="default: the model file itself")
    p.add_argument("--valid", type=Path, help="measure it again here and note it in its card")
    args = p.parse_args(argv)
    out = args.out or args.model
    if args.out and args.model.with_suffix(".json").is_file():
        shutil.copyfile(args.model.with_suffix(".json"), out.with_suffix(".json"))
    pairs = rewrite(args.model, args.out)
    if pairs and args.valid and out.with_suffix(".json").is_file():
        note_in_card(out.with_suffix(".json"), pairs, measured(out, args.valid))
    print(f"{pairs} quantize/dequantize pairs removed after the last matrix product: {out}")


if __name__ == "__main__":
    main()
