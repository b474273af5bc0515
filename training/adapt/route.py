"""Each face read by the network that knows its kind: the original, or the one fine-tuned on yours.

A fine-tune learns your camera's look (its light, blur, framing) and, with it, costs a little
of what the original read on everyone else's faces: replay, frozen layers and averaging only
make that cost smaller (training/README.md: a rare class such as Contempt still lost one or
two of its 16 FER+ Valid faces in almost every run). A routed model holds both ONNX files
whole, the original exactly as shipped, and a gate that tells a face from your camera from
any other, in one ONNX file:

    logits = original(x) + g(x) * (fine_tuned(x) - original(x))

g is a logistic regression on the original's stem and layer1 (per channel, the mean and the
spread of each feature map: light, contrast, blur and texture, which a camera sets, and
little of the expression), fitted on your training faces against FER+ training faces. Your
faces are then read as the fine-tuned network reads them, everyone else's as before. The
cost: two networks a face (about twice the time and the file); `--no-route` writes the
fine-tuned network alone.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import torch
from onnx import compose, helper
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from emotion.card import ModelCard
from training.data import readers
from training.fit import pipeline

# fastai's ResNet body: the stem (parts 0-3) and layer1 (part 4), training.fit.train.PARTS
EARLY = slice(0, 5)
GATE_C = 0.1  # L2 strength of the gate's regression: a few hundred faces, 128 features
ROUTED = 0.5  # a face counts as routed to the fine-tuned network when g > this


class Gate(torch.nn.Module):
    """g(x) in [0, 1]: how much a face looks like the user's folder rather than FER+."""

    def __init__(
        self,
        early: torch.nn.Module,
        mean: np.ndarray,
        scale: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
    ):
        super().__init__()
        self.early = early
        self.register_buffer("mean", float32(mean))
        self.register_buffer("scale", float32(scale))
        self.register_buffer("weight", float32(weight).reshape(-1, 1))
        self.register_buffer("bias", float32(bias).reshape(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = statistics(self.early(x))
        standardized = (features - self.mean) / self.scale
        return torch.sigmoid(standardized @ self.weight + self.bias)


def float32(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=torch.float32)


def statistics(maps: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean and the standard deviation over the feature map."""
    return torch.cat([maps.mean(dim=(2, 3)), maps.std(dim=(2, 3))], dim=1)


def features(early: torch.nn.Module, faces: list[readers.Face], card: ModelCard) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(faces), 128):
            batch = pipeline.inference_batch(faces[start : start + 128], card)
            out.append(statistics(early(batch)).numpy())
    return np.concatenate(out)


def fit_gate(
    start: torch.nn.Module, yours: list[readers.Face], theirs: list[readers.Face], card: ModelCard
) -> Gate:
    """The gate on a copy of `start`'s stem and layer1 (the original's: the fine-tuned
    network's own changed), fitted on `yours` (the folder's training faces) against `theirs`
    (FER+ faces), each side weighted alike however many there are."""
    early = copy.deepcopy(start[0][EARLY]).eval()
    x = np.concatenate([features(early, yours, card), features(early, theirs, card)])
    y = np.r_[np.ones(len(yours)), np.zeros(len(theirs))]
    scaler = StandardScaler().fit(x)
    regression = LogisticRegression(C=GATE_C, class_weight="balanced", max_iter=5000)
    regression.fit(scaler.transform(x), y)
    gate = Gate(early, scaler.mean_, scaler.scale_, regression.coef_[0], regression.intercept_)
    # eval, whole: an ONNX export puts a module back in the mode it found it in, and the
    # early layers' BatchNorms must keep reading with their running statistics
    return gate.eval()


def routed_share(gate: Gate, faces: list[readers.Face], card: ModelCard) -> float | None:
    """The share of `faces` the gate sends (mostly) to the fine-tuned network (None: no faces)."""
    if not faces:
        return None
    with torch.no_grad():
        g = [gate(pipeline.inference_batch(faces[start : start + 128], card))
             for start in range(0, len(faces), 128)]  # fmt: skip
    return float((torch.cat(g) > ROUTED).float().mean())


def combined(original: onnx.ModelProto, tuned: onnx.ModelProto, gate: onnx.ModelProto):
    """One ONNX graph: the three models side by side on the same input (each one's names
    prefixed with its part's), and original + g * (tuned - original) as its logits."""
    parts = {"original": original, "tuned": tuned, "gate": gate}
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    opsets: dict[str, int] = {}
    names: dict[str, tuple[str, str]] = {}
    for part, model in parts.items():
        graph = compose.add_prefix(model, f"{part}/").graph
        names[part] = graph.input[0].name, graph.output[0].name
        nodes += [helper.make_node("Identity", ["input"], [names[part][0]]), *graph.node]
        initializers += graph.initializer
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    before, after, g = (names[part][1] for part in parts)
    nodes += [
        helper.make_node("Sub", [after, before], ["route/change"]),
        helper.make_node("Mul", [g, "route/change"], ["route/moved"]),
        helper.make_node("Add", [before, "route/moved"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "routed", list(original.graph.input), list(original.graph.output), initializers
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()]
    )
    model.ir_version = max(m.ir_version for m in parts.values())
    onnx.checker.check_model(model)
    return model
