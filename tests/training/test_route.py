"""A routed model (training.adapt.route): a gate on the original's early layers tells faces in
one camera's look from FER+'s, and the routed file reads FER+'s faces exactly as the shipped
file does and faces in that look as the fine-tuned one does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from PIL import Image

from emotion.card import CLASSES, ModelCard
from emotion.model import EmotionModel
from emotion.preprocess import to_input
from training.adapt import finetune, route, standin
from training.data import readers
from training.fit import export, pipeline, shipped

ROOT = Path(__file__).resolve().parents[2]
FERPLUS = ROOT.parent / "shared" / "data" / "ferplus"
MODEL = ROOT / "models" / "emotion.onnx"
CONTEMPT = CLASSES.index("Contempt")


@pytest.fixture(scope="module")
def looks(tmp_path_factory) -> dict[str, list[readers.Face]]:
    """FER+ training faces: 160 in the stand-in's camera look (120 to fit on, 40 held out) and
    500 as they are (250 to fit on, 250 held out), none shared."""
    faces, _ = readers.read_ferplus(FERPLUS / "FER2013Train")
    order = np.random.default_rng(3).permutation(len(faces))
    folder = tmp_path_factory.mktemp("camera")
    yours = []
    for i in order[:160]:
        path = folder / f"{faces[i].path.stem}.png"
        standin.shifted(faces[i].path).save(path)
        yours.append(readers.Face(path, faces[i].votes))
    theirs = [faces[i] for i in order[160:660]]
    return {"yours": yours[:120], "yours_held": yours[120:],
            "theirs": theirs[:250], "theirs_held": theirs[250:]}  # fmt: skip


@pytest.fixture(scope="module")
def gate(looks) -> route.Gate:
    weights = shipped.weights(MODEL, FERPLUS / "FER2013Train")
    card = ModelCard.read(weights.with_suffix(".json"))
    torch.set_num_threads(1)
    return route.fit_gate(export.load_shipped(weights), looks["yours"], looks["theirs"], card)


def test_the_gate_tells_one_cameras_look_from_ferplus_faces(looks, gate):
    card = ModelCard.read(MODEL.with_suffix(".json"))
    assert route.routed_share(gate, looks["yours_held"], card) >= 0.95
    assert route.routed_share(gate, looks["theirs_held"], card) <= 0.05
    assert route.routed_share(gate, [], card) is None
    # a logistic regression's chance, not a hard switch: between 0 and 1 where it is unsure
    with torch.no_grad():
        g = gate(pipeline.inference_batch(looks["theirs_held"][:64], card))
    assert g.shape == (64, 1) and float(g.min()) >= 0.0 and float(g.max()) <= 1.0


def with_contempt_raised(model: onnx.ModelProto, by: float) -> onnx.ModelProto:
    """The same network with `by` added to Contempt's logit: a stand-in for a fine-tuned file
    whose answers differ from the original's in a way that is easy to see."""
    raised = onnx.ModelProto()
    raised.CopyFrom(model)
    graph = raised.graph
    for node in graph.node:
        node.output[:] = ["plain" if o == "logits" else o for o in node.output]
    shift = np.zeros(len(CLASSES), np.float32)
    shift[CONTEMPT] = by
    graph.initializer.append(numpy_helper.from_array(shift, "raise"))
    graph.node.append(helper.make_node("Add", ["plain", "raise"], ["logits"]))
    return raised


def test_the_routed_file_reads_ferplus_faces_as_shipped_and_yours_as_fine_tuned(
    looks, gate, tmp_path
):
    card = ModelCard.read(MODEL.with_suffix(".json"))
    original = onnx.load(str(MODEL))
    gate_file = tmp_path / "gate.onnx"
    export.export_onnx(gate, card.input_size, gate_file)
    routed = route.combined(
        original, with_contempt_raised(original, 5.0), onnx.load(str(gate_file))
    )
    path = tmp_path / "routed.onnx"
    onnx.save(routed, str(path))
    shutil.copy(MODEL.with_suffix(".json"), path.with_suffix(".json"))
    faces = looks["theirs_held"][:40] + looks["yours_held"]
    images = [Image.open(f.path) for f in faces]
    batch = to_input(images, card)
    run = lambda file: ort.InferenceSession(  # noqa: E731
        str(file), providers=["CPUExecutionProvider"]
    ).run(None, {"input": batch})[0]
    shipped_logits, routed_logits = run(MODEL), run(path)
    with torch.no_grad():
        g = gate(torch.from_numpy(batch)).numpy()[:, 0]
    change = routed_logits - shipped_logits
    # every class but Contempt exactly as shipped; Contempt raised by 5 x the gate
    others = [i for i in range(len(CLASSES)) if i != CONTEMPT]
    np.testing.assert_allclose(change[:, others], 0.0, atol=1e-4)
    np.testing.assert_allclose(change[:, CONTEMPT], 5.0 * g, atol=2e-3)
    assert (change[:40, CONTEMPT] < 0.5).mean() >= 0.95  # FER+'s faces: the original's reading
    assert (change[40:, CONTEMPT] > 4.5).mean() >= 0.95  # faces in the look: the other one's
    # the server loads it as any model file
    served = EmotionModel(path).logits(images)
    np.testing.assert_allclose(served, routed_logits, atol=1e-4)


def test_route_is_on_with_replay_and_refused_without(tmp_path):
    common = ["--data", "faces", "--out", "mine.onnx"]
    assert finetune.parse_args([*common, "--replay", "x"]).route
    assert not finetune.parse_args([*common, "--replay", "x", "--no-route"]).route
    assert not finetune.parse_args([*common, "--replay", "none"]).route
    with pytest.raises(SystemExit):
        finetune.parse_args([*common, "--replay", "none", "--route"])


def test_route_warnings_say_when_the_gate_cannot_tell_the_camera_apart():
    fine = {"sent_to_fine_tuned": {"your_held_out": 0.97, "fer_not_fitted_on": 0.01}}
    assert finetune.route_warnings(fine) == [] and finetune.route_warnings(None) == []
    nothing_held = {"sent_to_fine_tuned": {"your_held_out": None, "fer_not_fitted_on": 0.01}}
    assert finetune.route_warnings(nothing_held) == []
    blind = {"sent_to_fine_tuned": {"your_held_out": 0.4, "fer_not_fitted_on": 0.3}}
    notes = finetune.route_warnings(blind)
    assert len(notes) == 2 and "40%" in notes[0] and "30%" in notes[1]


def test_a_routed_files_weights_are_not_a_start_for_another_route(tmp_path, capsys):
    """A routed file's .pth is its fine-tuned network alone: starting a routed fine-tune from
    it would drop the original it routes to, so it is refused with a way out."""
    folder = tmp_path / "faces"
    for name in ("happy", "sad"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (48, 48), 60 * i).save(folder / name / f"{i}.png")
    card = json.loads(MODEL.with_suffix(".json").read_text())
    card["fine_tuned"] = {"routing": {"sent_to_fine_tuned": {}}}
    start = tmp_path / "mine.pth"
    start.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(SystemExit, match=r"one side of a routed model.*--no-route"):
        finetune.main(["--data", str(folder), "--out", str(tmp_path / "again.onnx"),
                       "--weights", str(start), "--replay", str(FERPLUS / "FER2013Train"),
                       "--check", "none"])  # fmt: skip
    assert not (tmp_path / "again.onnx").exists()
