"""Static int8 rounds the logits too, and rounded logits tie: a tie then goes to the first class
in the card's order, not to the network's answer (training.ship.float_logits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from training.ship import float_logits

ROOT = Path(__file__).resolve().parents[2]


def rounded_graph() -> onnx.ModelProto:
    """x -> Q/DQ -> MatMul -> Q/DQ -> Add(offset) -> Q/DQ -> logits: the shape of a static
    QDQ export's tail, with a scale of 0.5 so that rounding is easy to see."""
    inits = [
        numpy_helper.from_array(np.eye(2, 3, dtype=np.float32), "w"),
        numpy_helper.from_array(np.array([0.0, 0.1, 0.2], np.float32), "offset"),
        numpy_helper.from_array(np.array(0.5, np.float32), "scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "zero"),
    ]

    def rounding(name: str, into: str) -> list[onnx.NodeProto]:
        return [
            helper.make_node("QuantizeLinear", [name, "scale", "zero"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", "scale", "zero"], [into]),
        ]

    nodes = [
        *rounding("x", "x_dq"),
        helper.make_node("MatMul", ["x_dq", "w"], ["product"]),
        *rounding("product", "product_dq"),
        helper.make_node("Add", ["product_dq", "offset"], ["shifted"]),
        *rounding("shifted", "logits"),
    ]
    graph = helper.make_graph(
        nodes,
        "tail",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what this ONNX Runtime reads (onnx writes newer by default)
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"x": x})[0]


def test_the_logits_after_the_last_product_are_no_longer_rounded():
    model = rounded_graph()
    x = np.array([[1.0, 1.0]], np.float32)  # exact on the input's 0.5 grid
    before = run(model, x)
    assert before[0, 0] == before[0, 1]  # 1.0 and 1.1 both round to 1.0: a tie, Anger "wins"
    assert float_logits.float_logits(model) == 2
    onnx.checker.check_model(model)
    after = run(model, x)
    np.testing.assert_allclose(after, [[1.0, 1.1, 0.2]], rtol=1e-6)
    kinds = [n.op_type for n in model.graph.node]
    assert kinds[:2] == ["QuantizeLinear", "DequantizeLinear"]  # the input's rounding stays
    assert kinds[2:] == ["MatMul", "Add"]
    assert [o.name for o in model.graph.output] == ["logits"]  # the service reads it by name
    assert {t.name for t in model.graph.initializer} == {"w", "offset", "scale", "zero"}


def test_a_graph_without_a_matrix_product_is_left_alone():
    model = rounded_graph()
    del model.graph.node[2:]
    assert float_logits.float_logits(model) == 0


def test_the_card_keeps_the_rounded_figures_beside_the_new_ones(tmp_path):
    card = tmp_path / "m.json"
    card.write_text(json.dumps({"quantization": {"int8_accuracy": 0.8, "int8_mean_recall": 0.7}}))
    float_logits.note_in_card(card, 3, {"int8_accuracy": 0.81, "int8_mean_recall": 0.69})
    report = json.loads(card.read_text())["quantization"]
    assert (report["int8_accuracy"], report["int8_mean_recall"]) == (0.81, 0.69)
    assert report["float_logits"]["pairs_removed"] == 3
    assert report["float_logits"]["rounded_logits"] == {
        "int8_accuracy": 0.8,
        "int8_mean_recall": 0.7,
    }


def test_the_served_resnet34_computes_its_logits_in_float():
    """models/emotion.onnx is static int8; nothing after its last MatMul is rounded again."""
    model = onnx.load(str(ROOT / "models/emotion.onnx"))
    nodes = list(model.graph.node)
    last = max(i for i, n in enumerate(nodes) if n.op_type in ("MatMul", "Gemm"))
    assert any(n.op_type == "QuantizeLinear" for n in nodes[:last])  # int8 up to there
    assert not any(n.op_type == "QuantizeLinear" for n in nodes[last:])
