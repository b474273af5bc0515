"""The manifest the page's worker reads (tools/site_model.py) fits the model it names (the
device's classifier, a student distilled from the server model's teacher): the input side and
channels the worker builds its tensor from are the ONNX input's, and there is one output per
class. A mismatch fails here in a second, not as an on-device model that never becomes ready."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion-student.onnx"


def dims(value) -> list:
    return [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]


def test_the_manifest_fits_the_model(tmp_path):
    spec = importlib.util.spec_from_file_location("site_model", ROOT / "tools" / "site_model.py")
    site_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site_model)
    manifest = site_model.publish(MODEL, tmp_path)
    assert json.loads((tmp_path / "compact.json").read_text()) == manifest
    graph = onnx.load(MODEL, load_external_data=False).graph
    (image,) = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    (logits,) = graph.output
    side = manifest["input_size"]
    # js/classify-worker.js: a [1, 1, side, side] tensor of toInput(..., manifest)
    assert dims(image)[1:] == [{"L": 1}[manifest["color_mode"]], side, side]
    assert dims(logits)[1:] == [len(manifest["classes"])]
    # the page publishes the device's file itself, under its content hash
    assert manifest["file"] == f"{MODEL.stem}.{manifest['sha256'][:8]}.onnx"


def test_the_page_builds_with_this_model():
    """The Makefile's DEVICE_MODEL (what `make site` publishes) is the file tested here."""
    makefile = (ROOT / "Makefile").read_text()
    (device,) = re.findall(r"^DEVICE_MODEL \?= (\S+)$", makefile, re.M)
    assert ROOT / device == MODEL
    assert re.search(r"^CLASSIFIER := \$\(DEVICE_MODEL\)$", makefile, re.M)
