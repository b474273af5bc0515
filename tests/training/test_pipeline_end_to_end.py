"""A tiny real run: generated faces -> fastai training (1 epoch) -> ONNX + card -> ONNX
Runtime, with the export and preprocessing parity checks the served model depends on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.schedule import combined_cos
from fastai.vision.all import vision_learner
from PIL import Image

from emotion.card import CLASSES, ModelCard
from emotion.model import EmotionModel
from emotion.preprocess import to_input
from face_images import drawn_face
from training.data.readers import Face, read_folders
from training.fit import export, train
from training.fit.model import FlipAverage
from training.fit.pipeline import inference_batch
from training.gpu import sweep
from training.measure import evaluate
from training.ship import calibrate, int8_compute


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(7)
    for folder, smile in (("happy", True), ("sad", False)):
        (root / folder).mkdir()
        for i in range(24):
            size, mode = [(48, "L"), (64, "RGB"), (100, "L")][i % 3]
            drawn_face(rng, smile, size, mode).save(root / folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    train.main(["--train", str(data_root), "--run", str(run), "--epochs", "1", "--bs", "16",
                "--size", "48", "--valid-pct", "0.25", "--threads", "1"])  # fmt: skip
    return run


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "emotion.onnx"
    export.main(["--run", str(run), "--out", str(out)])
    return out


def test_training_checkpoints_and_logs_every_epoch(run):
    assert (run / "final.pth").is_file()
    assert (run / "models" / "epoch_0.pth").is_file()
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,valid_loss") and len(history) == 2
    config = json.loads((run / "config.json").read_text())
    assert config["command"].startswith("python -m training.fit.train ")


def test_resume_of_a_finished_run_trains_nothing(run, data_root):
    before = torch.load(run / "final.pth")
    train.main(["--train", str(data_root), "--run", str(run), "--resume", "--threads", "1"])
    after = torch.load(run / "final.pth")
    assert all(torch.equal(before[k], after[k]) for k in before)  # no step taken
    assert len((run / "history.csv").read_text().splitlines()) == 2  # no epoch re-run


class Stopped(Exception):
    """Stands for the kill that ends a run between two epochs."""


class Probe(Callback):
    """Records the learning rate of every training batch; stops the fit after an epoch."""

    order = 100  # after SaveModelCallback: the epoch's checkpoint is on disk when it stops

    def __init__(self, lrs: list, stop_after: int | None = None):
        self.lrs, self.stop_after = lrs, stop_after
        self.first_weights: dict | None = None

    def before_fit(self) -> None:  # after train.main loaded any checkpoint
        self.first_weights = {k: v.clone() for k, v in self.learn.model.state_dict().items()}

    def before_batch(self) -> None:
        if self.training:
            self.lrs.append((self.epoch, self.iter, self.n_iter, self.opt.hypers[-1]["lr"]))

    def after_epoch(self) -> None:
        if self.epoch == self.stop_after:
            raise Stopped(f"stopped after epoch {self.epoch}")


def train_with_probe(monkeypatch, argv: list[str], probe: Probe) -> None:
    def with_probe(*args, **kwargs):
        learn = vision_learner(*args, **kwargs)
        learn.add_cb(probe)
        return learn

    monkeypatch.setattr(train, "vision_learner", with_probe)
    train.main(argv)


def test_a_run_stopped_partway_resumes_where_it_stopped_on_the_same_schedule(
    data_root, tmp_path, monkeypatch
):
    run, lr = tmp_path / "run", 0.01
    common = ["--train", str(data_root), "--run", str(run), "--bs", "16", "--size", "48",
              "--limit", "32", "--valid-pct", "0.25", "--threads", "1"]  # fmt: skip
    lrs: list = []
    with pytest.raises(Stopped):  # 2 epochs of a 3-epoch schedule, then killed
        train_with_probe(monkeypatch, [*common, "--epochs", "3", "--lr", str(lr)], Probe(lrs, 1))
    assert not (run / "final.pth").exists()
    assert sorted(p.name for p in (run / "models").glob("epoch_*.pth")) == [
        "epoch_0.pth",
        "epoch_1.pth",
    ]
    saved = torch.load(run / "models" / "epoch_1.pth", weights_only=False)["model"]

    # Resumed with another --epochs and --lr on the command line: the saved schedule wins.
    resumed: list = []
    probe = Probe(resumed)
    train_with_probe(monkeypatch, [*common, "--epochs", "9", "--lr", "0.5", "--resume"], probe)
    assert {epoch for epoch, *_ in resumed} == {2}  # only the missing epoch ran

    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    assert history[0][:3] == ["epoch", "train_loss", "valid_loss"]
    assert [row[0] for row in history[1:]] == ["0", "1", "2"]  # one header, a row per epoch
    assert all(len(row) == len(history[0]) and row[1] != "" for row in history[1:])
    assert (run / "final.pth").is_file()
    assert json.loads((run / "config.json").read_text())["args"]["epochs"] == 3

    # One one-cycle schedule across the stop: every batch's lr is fastai's fit_one_cycle(3)
    # value at that point, so the resumed epoch did not restart (or stretch) the schedule.
    schedule = combined_cos(0.25, lr / 25, lr, lr / 1e5)
    for epoch, i, n_iter, got in lrs + resumed:
        assert got == pytest.approx(schedule((epoch * n_iter + i) / (3 * n_iter)), rel=1e-6)

    # ...and it started from the epoch-1 weights, not from scratch.
    assert probe.first_weights is not None
    key = next(k for k, v in saved.items() if v.is_floating_point() and v.numel() > 100)
    assert torch.equal(probe.first_weights[key], saved[key])


def test_export_writes_onnx_with_dynamic_batch_and_a_card(exported):
    card = ModelCard.read(exported.with_suffix(".json"))
    assert card.classes == CLASSES
    assert (card.input_size, card.color_mode, card.resize) == (48, "L", "bilinear")
    assert card.details["recipe"]["command"].startswith("python -m training.fit.train")
    assert "never a basis for decisions" in card.details["not_for"].lower()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        (logits,) = session.run(None, {"input": np.zeros((batch, 1, 48, 48), np.float32)})
        assert logits.shape == (batch, len(CLASSES))


def test_served_model_predicts(exported, data_root):
    model = EmotionModel(exported)
    probs = model.predict([Image.open(p) for p in sorted(data_root.rglob("*.png"))[:6]])
    assert probs.shape == (6, 8)
    assert np.allclose(probs.sum(axis=1), 1)


def test_export_parity_onnx_vs_pytorch(run, exported):
    net = FlipAverage(export.load_weights(run, None))
    x = torch.randn(16, 1, 48, 48)
    with torch.no_grad():
        reference = torch.softmax(net(x), dim=1).numpy()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x.numpy()})
    served = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    assert np.abs(reference - served).max() <= 1e-4


def test_pipeline_parity_serving_vs_fastai(run, exported, data_root, tmp_path):
    """The numpy/Pillow preprocessing reads the card and matches fastai's own pipeline."""
    rng = np.random.default_rng(3)
    paths = sorted(data_root.rglob("*.png"))
    # Also shapes the data set lacks: non-square, odd sizes, palette.
    for i, (w, h, mode) in enumerate([(60, 40, "RGB"), (33, 71, "L"), (200, 200, "P")]):
        path = tmp_path / f"extra{i}.png"
        drawn_face(rng, i % 2 == 0, 96, "RGB").resize((w, h)).convert(mode).save(path)
        paths.append(path)
    faces = [Face(p, (1.0,) + (0.0,) * 7) for p in paths]
    card = ModelCard.read(exported.with_suffix(".json"))

    fastai_x = inference_batch(faces, card).numpy()
    served_x = to_input([Image.open(p) for p in paths], card)
    assert fastai_x.shape == served_x.shape
    assert np.abs(fastai_x - served_x).max() < 0.05  # at most ~1 grey level after normalising

    net = FlipAverage(export.load_weights(run, None))
    with torch.no_grad():
        fastai_top = net(torch.from_numpy(fastai_x)).argmax(1).numpy()
    served_top = EmotionModel(exported).predict([Image.open(p) for p in paths]).argmax(1)
    assert (fastai_top == served_top).mean() >= 0.995


def test_evaluate_reports_metrics_on_the_folder_layout(exported, data_root):
    result = evaluate.evaluate(exported, data_root, None, exported.with_name("cm.png"))
    assert result["faces"] == 48
    assert set(result["recall"]) == set(CLASSES)
    assert 0 <= result["ece_15_bins"] <= 1
    assert exported.with_name("cm.png").stat().st_size > 1000


def test_reader_sees_the_generated_layout(data_root):
    faces, labels = read_folders(data_root)
    assert len(faces) == 48 and {CLASSES[i] for i in labels} == {"Happiness", "Sadness"}


def test_calibrate_writes_the_temperature_into_the_card(exported_copy, data_root):
    calibrate.main(["--model", str(exported_copy), "--valid", str(data_root)])
    card = ModelCard.read(exported_copy.with_suffix(".json"))
    assert card.temperature == card.details["calibration"]["temperature"]
    assert card.details["calibration"]["faces"] == 48


@pytest.fixture
def exported_copy(exported, tmp_path) -> Path:
    for suffix in (".onnx", ".json"):
        shutil.copy(exported.with_suffix(suffix), tmp_path / f"emotion{suffix}")
    return tmp_path / "emotion.onnx"


def test_gpu_sweep_weights_travel_as_float16_chunks_and_come_back(run, tmp_path):
    packed, back = tmp_path / "packed", tmp_path / "back"
    packed.mkdir()
    sweep.pack(run, packed)
    chunks = list(packed.glob("weights.part*"))
    assert len(chunks) >= 2 and all(c.stat().st_size <= 16 * 1024 * 1024 for c in chunks)
    sweep.unpack(packed, back)
    original = torch.load(run / "final.pth")
    restored = torch.load(back / "final.pth")
    assert original.keys() == restored.keys()
    for key, value in original.items():
        expected = value.half().float() if value.is_floating_point() else value
        assert restored[key].dtype == value.dtype and torch.equal(restored[key], expected)
    assert (back / "config.json").read_text() == (run / "config.json").read_text()


def test_quantize_keeps_an_int8_model_only_within_the_accuracy_limit(exported, data_root, tmp_path):
    out = tmp_path / "int8" / "emotion.onnx"
    common = ["--model", str(exported), "--train", str(data_root), "--valid", str(data_root),
              "--out", str(out), "--faces", "32"]  # fmt: skip
    assert int8_compute.main([*common, "--max-loss", "1.0"]) == 0
    card = ModelCard.read(out.with_suffix(".json"))
    assert card.details["quantization"]["int8_mb"] < card.details["quantization"]["float_mb"]
    assert card.temperature == card.details["quantization"]["int8_temperature"]
    assert EmotionModel(out).predict([Image.open(next(data_root.rglob("*.png")))]).shape == (1, 8)

    assert int8_compute.main([*common, "--max-loss", "-1.0"]) == 1  # no model can meet that
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_coarsening_keeps_every_nth_level_and_shrinks_what_git_stores(
    exported, data_root, tmp_path
):
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "int8" / "emotion.onnx"
    assert int8_compute.main(["--model", str(exported), "--train", str(data_root), "--valid",
                              str(data_root), "--out", str(out), "--faces", "32", "--max-loss",
                              "1.0", "--coarse-step", "1"]) == 0  # fmt: skip
    coarse = tmp_path / "coarse.onnx"
    coarse.write_bytes(out.read_bytes())
    coarse.with_suffix(".json").write_text(out.with_suffix(".json").read_text())
    changed = int8_compute.coarsen_large_weights(coarse, step=4, min_weights=10_000)

    large = [t for t in onnx.load(str(coarse)).graph.initializer
             if t.data_type == onnx.TensorProto.INT8 and np.prod(t.dims) >= 10_000]  # fmt: skip
    assert large and changed == sum(int(np.prod(t.dims)) for t in large)
    assert all(np.abs(numpy_helper.to_array(t)).max() <= 16 for t in large)  # 64 / 4
    before, after = _int8_weights(out), _int8_weights(coarse)
    assert before.keys() == after.keys()
    for name, (values, step) in after.items():
        old_values, old_step = before[name]
        if np.allclose(step, old_step):  # a small layer: left as it was
            assert np.array_equal(values, old_values), name
        else:  # one rounding, on the grid 4 times coarser
            assert np.allclose(step, 4 * old_step), name
            assert np.all(np.abs(values - old_values) <= step / 2 + 1e-7), name
    assert int8_compute.git_mb(coarse) < int8_compute.git_mb(out)
    face = Image.open(next(data_root.rglob("*.png")))
    assert EmotionModel(coarse).predict([face]).shape == (1, 8)
    # ONNX Runtime still fuses every layer into an int8 one: a bias left on the old scale
    # would leave the coarsened layers computing in float (4.7x slower on the ResNet34)
    assert _fused_ops(coarse, tmp_path) == _fused_ops(out, tmp_path)
    assert _fused_ops(coarse, tmp_path)["QLinearConv"] > 0


def _fused_ops(path: Path, scratch: Path) -> dict[str, int]:
    """How many of each operator ONNX Runtime runs after its graph optimisations."""
    from collections import Counter

    import onnx

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(scratch / "optimised.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)


def _int8_weights(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each int8 weight a DequantizeLinear reads: its float values and its scale (shaped to it)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        weight = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if weight is None or weight.data_type != onnx.TensorProto.INT8:
            continue
        levels = numpy_helper.to_array(weight).astype(np.float32)
        scale = numpy_helper.to_array(initializers[node.input[1]])
        if scale.ndim:  # per channel, along the node's axis (a MatMul's weight: axis 1)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * levels.ndim
            shape[axis] = -1
            scale = scale.reshape(shape)
        found[weight.name] = (levels * scale, np.broadcast_to(scale, levels.shape))
    return found


def test_quantize_can_keep_the_first_convolution_and_the_last_layer_float(
    exported, data_root, tmp_path
):
    import onnx

    out = tmp_path / "int8" / "ends.onnx"
    assert int8_compute.main(["--model", str(exported), "--train", str(data_root), "--valid",
                              str(data_root), "--out", str(out), "--faces", "32", "--max-loss",
                              "1.0", "--keep-ends-float"]) == 0  # fmt: skip
    quantization = ModelCard.read(out.with_suffix(".json")).details["quantization"]
    assert "last layer float" in quantization["method"]
    assert (
        set(quantization["int8_recall"]) == set(CLASSES)
        and 0 <= quantization["int8_mean_recall"] <= 1
    )
    graph = onnx.load(str(out)).graph
    produced_by = {o: n for n in graph.node for o in n.output}

    def weight_is_dequantized(node) -> bool:  # its weight input comes out of a DequantizeLinear
        source = produced_by.get(node.input[1])
        return source is not None and source.op_type == "DequantizeLinear"

    convs = [n for n in graph.node if n.op_type == "Conv"]
    products = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    assert not weight_is_dequantized(convs[0]) and not weight_is_dequantized(products[-1])
    assert weight_is_dequantized(convs[1])  # the rest is int8


def test_a_student_trains_exports_and_serves_through_the_same_steps(data_root, tmp_path):
    """--arch: a timm student under fastai's head goes through training, export and ONNX
    Runtime as the ResNet34 does; its card names it, so later steps rebuild the same net."""
    run, out = tmp_path / "student", tmp_path / "student.onnx"
    train.main(["--train", str(data_root), "--run", str(run), "--epochs", "1", "--bs", "16",
                "--size", "48", "--valid-pct", "0.25", "--threads", "1", "--arch", "resnet10t"])  # fmt: skip
    export.main(["--run", str(run), "--out", str(out), "--no-flip-tta"])
    card = ModelCard.read(out.with_suffix(".json"))
    assert card.name == "emotion-resnet10t" and card.details["arch"] == "resnet10t"
    net = export.load_shipped(out.with_suffix(".pth"))  # the arch read from the card beside
    assert sum(p.numel() for p in net.parameters()) < 6_000_000  # a quarter of the ResNet34
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        reference = net(x).numpy()
    (logits,) = ort.InferenceSession(str(out)).run(None, {"input": x.numpy()})
    assert np.abs(reference - logits).max() <= 1e-3 * max(1.0, np.abs(reference).max())
