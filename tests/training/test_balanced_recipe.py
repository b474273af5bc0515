"""The balanced recipe: logit adjustment, live-crop augmentation, weights kept beside the ONNX
file, re-export from them, and fine-tuning on a folder of faces, end to end on generated
faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from emotion.card import CLASSES, ModelCard
from face_images import drawn_face
from training.adapt import finetune
from training.data import readers
from training.data.augment import Frame, jittered_frames, reframe
from training.fit import export, train
from training.fit.model import SoftTargetCrossEntropy
from training.measure import metrics


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(3)
    for folder, smile, count in (("happy", True, 30), ("sad", False, 12)):
        (root / folder).mkdir()
        for i in range(count):
            drawn_face(rng, smile, 48, "L").save(root / folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def shipped(faces_root, tmp_path_factory) -> Path:
    """A tiny trained and exported model standing in for models/emotion.{onnx,pth,json}."""
    run = tmp_path_factory.mktemp("run")
    train.main(["--train", str(faces_root), "--run", str(run), "--epochs", "1", "--bs", "16",
                "--size", "48", "--valid-pct", "0.25", "--threads", "1"])  # fmt: skip
    out = tmp_path_factory.mktemp("models") / "emotion.onnx"
    export.main(["--run", str(run), "--out", str(out), "--prior-weight", "0.5"])
    return out


def logits_of(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_class_prior_is_the_mean_vote_share_and_never_zero():
    faces = [
        readers.Face(Path("a"), (3, 1, 0, 0, 0, 0, 0, 0)),
        readers.Face(Path("b"), (0, 1, 0, 0, 0, 0, 0, 0)),
    ]
    prior = readers.class_prior(faces)
    assert prior[0] == pytest.approx(0.375, abs=1e-3) and prior[1] == pytest.approx(0.625, abs=1e-3)
    assert min(prior) > 0 and sum(prior) == pytest.approx(1, abs=1e-5)


def test_logit_adjusted_loss_favours_rare_classes():
    prior = [0.9, 0.1] + [1e-6] * 6
    plain, adjusted = SoftTargetCrossEntropy(), SoftTargetCrossEntropy(prior, tau=1.0)
    logits = torch.zeros(1, 8)
    rare = torch.tensor([[0.0, 1.0, 0, 0, 0, 0, 0, 0]])
    common = torch.tensor([[1.0, 0.0, 0, 0, 0, 0, 0, 0]])
    # Equal logits: the adjusted loss already credits the common class (its prior does it),
    # so a rare-class target costs more, which pushes the rare logit up during training.
    assert plain(logits, rare) == pytest.approx(plain(logits, common).item())
    assert adjusted(logits, rare) > adjusted(logits, common) + 2
    assert SoftTargetCrossEntropy(prior, tau=0.0)(logits, rare) == pytest.approx(
        plain(logits, rare).item()
    )


def test_deferred_logit_adjustment_switches_on_at_its_epoch_even_after_a_resume():
    from types import SimpleNamespace

    prior = [0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01]
    loss = SoftTargetCrossEntropy(prior, tau=1.0)
    full = loss.offset.clone()
    callback = train.DeferredLogitAdjustment(start_epoch=2)
    callback.learn = SimpleNamespace(loss_func=loss, epoch=0)
    callback.before_fit()
    seen = []
    for epoch in (0, 1, 2, 3):
        callback.learn.epoch = epoch
        callback.before_epoch()
        seen.append(bool(loss.offset.abs().sum()))
    assert seen == [False, False, True, True]
    assert torch.equal(loss.offset, full)
    resumed = train.DeferredLogitAdjustment(start_epoch=2)  # a new process resuming at epoch 3
    resumed.learn = SimpleNamespace(loss_func=SoftTargetCrossEntropy(prior, tau=1.0), epoch=3)
    resumed.before_fit()
    resumed.before_epoch()
    assert torch.equal(resumed.learn.loss_func.offset, full)


def test_mean_recall_on_a_hand_computed_matrix():
    matrix = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])  # third class has no faces
    assert metrics.mean_recall(matrix) == pytest.approx((0.8 + 0.5) / 2)


def test_reframe_identity_shift_and_scale():
    ramp = Image.fromarray(np.tile(np.arange(0, 240, 5, dtype=np.uint8), (48, 1)))  # x gradient
    assert np.array_equal(np.asarray(reframe(ramp, Frame(1, 0, 0, 0))), np.asarray(ramp))
    right = np.asarray(reframe(ramp, Frame(1, 0.1, 0, 0)), dtype=float)
    assert right[24, 24] > np.asarray(ramp, dtype=float)[24, 24] + 15  # the box moved right
    wide = np.asarray(reframe(ramp, Frame(1.15, 0, 0, 0)), dtype=float)
    assert wide[24, 0] == 0 and wide[24, 47] == 235  # edge-filled context, same size
    assert reframe(ramp.convert("RGB"), Frame(0.9, 0, 0.05, 8)).size == (48, 48)


def test_jittered_frames_are_fixed_by_their_seed_and_within_bounds():
    a, b = jittered_frames(200), jittered_frames(200)
    assert a == b and a != jittered_frames(200, seed=1)
    assert all(0.85 <= f.scale <= 1.15 and abs(f.dx) <= 0.1 and abs(f.angle) <= 10 for f in a)


def test_live_crop_augment_changes_training_faces_only():
    from training.data.augment import LiveCropAugment

    aug = LiveCropAugment(strength=1.25, seed=0)  # frame p 1.0
    face = drawn_face(np.random.default_rng(0), True, 48, "L")
    from fastai.vision.all import PILImageBW

    image = PILImageBW.create(np.asarray(face))
    changed = [
        not np.array_equal(np.asarray(aug(image, split_idx=0)), np.asarray(face)) for _ in range(5)
    ]
    assert all(changed)
    assert np.array_equal(np.asarray(aug(image, split_idx=1)), np.asarray(face))  # valid: as is


def test_export_keeps_float16_weights_and_bakes_the_prior_offset(shipped):
    card = ModelCard.read(shipped.with_suffix(".json"))
    adjustment = card.details["logit_adjustment"]
    assert adjustment["train_tau"] == 1.0 and adjustment["prior_weight"] == 0.5
    weights = shipped.with_suffix(".pth")
    assert card.details["weights"]["file"] == weights.name
    state = torch.load(weights, weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}

    x = np.random.default_rng(0).normal(size=(3, 1, 48, 48)).astype(np.float32)
    net = export.exported_graph(export.load_shipped(weights), True, None)
    with torch.no_grad():
        bare = net(torch.from_numpy(x)).numpy()
    expected = bare + 0.5 * np.log(np.asarray(adjustment["prior"]))
    assert np.abs(logits_of(shipped, x) - expected).max() < 1e-3


def test_re_export_from_the_shipped_weights_gives_the_same_model(shipped, tmp_path):
    out = tmp_path / "again.onnx"
    export.main(["--weights", str(shipped.with_suffix(".pth")), "--out", str(out)])
    x = np.random.default_rng(1).normal(size=(2, 1, 48, 48)).astype(np.float32)
    assert np.abs(logits_of(out, x) - logits_of(shipped, x)).max() < 1e-4
    assert (
        json.loads(out.with_suffix(".json").read_text())["logit_adjustment"]["prior_weight"] == 0.5
    )


def test_finetune_writes_a_new_model_and_reports_before_and_after(
    shipped, faces_root, tmp_path, capsys
):
    out = tmp_path / "mine.onnx"
    finetune.main(["--data", str(faces_root), "--out", str(out), "--weights",
                   str(shipped.with_suffix(".pth")), "--epochs", "1", "--bs", "8", "--threads", "1",
                   "--replay", "none", "--check", "none"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "before" in printed and "Happiness" in printed and "Sadness" in printed
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["after"]["faces"] == 8  # round(20% of 30) + round(20% of 12), per class
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["fine_tuned"]["held_out"]["after"] == result["after"]
    assert card["classes"] == list(CLASSES) and out.with_suffix(".pth").is_file()
    assert card["version"].endswith("-ft")
    # the starting model is untouched, and --out never silently replaces a model
    assert json.loads(shipped.with_suffix(".json").read_text())["version"] != card["version"]
    with pytest.raises(SystemExit, match="exists"):
        finetune.main(
            [
                "--data",
                str(faces_root),
                "--out",
                str(out),
                "--weights",
                str(shipped.with_suffix(".pth")),
            ]
        )


def test_finetune_names_a_folder_outside_the_eight_classes(shipped, tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "bored").mkdir()
    drawn_face(np.random.default_rng(0), True, 48, "L").save(tmp_path / "happy" / "a.png")
    with pytest.raises(SystemExit, match=r"bored.*not one of the classes"):
        finetune.main(["--data", str(tmp_path), "--out", str(tmp_path / "x.onnx"), "--weights",
                       str(shipped.with_suffix(".pth"))])  # fmt: skip


def test_balance_picks_the_best_mean_recall_that_keeps_accuracy():
    from training.measure import choose_prior_weight

    rows = [{"prior_weight": 0.0, "accuracy": 0.80, "mean_recall": 0.78},
            {"prior_weight": 0.3, "accuracy": 0.836, "mean_recall": 0.75},
            {"prior_weight": 0.6, "accuracy": 0.85, "mean_recall": 0.70}]  # fmt: skip
    assert choose_prior_weight.pick(rows) == 0.3
    assert (
        choose_prior_weight.pick(rows, floor=0.9) == 0.6
    )  # nothing keeps the floor: best accuracy
    labels = np.array([0, 0, 0, 1])
    logits = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    log_prior = np.log([0.75, 0.25])
    assert choose_prior_weight.scores(logits, labels, log_prior, 0.0)["accuracy"] == 0.5
    assert (
        choose_prior_weight.scores(logits, labels, log_prior, 1.0)["accuracy"] == 0.75
    )  # prior flips two
    jittered = np.array([[0.0, 1.0]] * 4)  # every re-framed crop called class 1
    assert (
        choose_prior_weight.scores(logits, labels, log_prior, 0.0, jittered)["jitter_loss"] == 0.25
    )


def test_cross_fitting_picks_on_one_half_and_measures_on_the_other_over_several_splits():
    from training.measure import choose_prior_weight

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    logits = np.stack([np.zeros(400), np.where(labels == 1, 0.5, -0.5)], axis=1)
    logits += rng.normal(0, 0.6, logits.shape)
    log_prior = np.log([0.7, 0.3])
    result = choose_prior_weight.cross_fitted(
        logits, labels, log_prior, [0.0, 0.5, 1.0], splits=4, floor=0.0
    )
    assert result["splits"] == 4 and len(result["chosen_per_half"]) == 4
    assert all(len(pair) == 2 for pair in result["chosen_per_half"])
    low, high = result["accuracy_range"]
    assert low <= result["accuracy"] <= high
    # with one weight to choose from, every split measures that weight on every face
    only = choose_prior_weight.cross_fitted(logits, labels, log_prior, [0.5], splits=3, floor=0)
    whole = choose_prior_weight.scores(logits, labels, log_prior, 0.5)
    assert only["accuracy_range"] == [whole["accuracy"]] * 2
    assert only["mean_recall"] == whole["mean_recall"]


def test_rebalancing_the_last_layer_names_the_rare_class_more_often():
    from training.fit.retrain_classifier import fit_last_layer

    rng = np.random.default_rng(0)
    counts = (950, 50)  # class 0 common, class 1 rare; their features overlap

    def with_constant(x: np.ndarray) -> torch.Tensor:  # the layer has no bias: a feature is one
        return torch.from_numpy(np.hstack([x, np.ones((len(x), 1))]).astype(np.float32))

    features = with_constant(np.concatenate([
        rng.normal(0.0, 1.0, (counts[0], 4)), rng.normal(1.0, 1.0, (counts[1], 4))
    ]))  # fmt: skip
    targets = torch.zeros(sum(counts), 8)
    targets[: counts[0], 0] = 1
    targets[counts[0] :, 1] = 1
    prior = [0.95, 0.05] + [1e-4] * 6
    start = torch.zeros(8, 5)
    balanced = with_constant(np.concatenate([
        rng.normal(0.0, 1.0, (500, 4)), rng.normal(1.0, 1.0, (500, 4))
    ]))  # fmt: skip
    truth = np.repeat([0, 1], 500)

    def mean_recall(weight: torch.Tensor) -> float:
        predicted = (balanced @ weight.T).argmax(dim=1).numpy()
        return float(np.mean([(predicted[truth == c] == c).mean() for c in (0, 1)]))

    plain = fit_last_layer(features, targets, start, prior, tau=0.0, epochs=20, lr=0.05)
    adjusted = fit_last_layer(features, targets, start, prior, tau=1.0, epochs=20, lr=0.05)
    assert mean_recall(adjusted) > mean_recall(plain) + 0.1


def test_balance_breaks_near_ties_in_mean_recall_by_accuracy():
    from training.measure import choose_prior_weight

    rows = [{"prior_weight": 0.40, "accuracy": 0.836, "mean_recall": 0.7550},
            {"prior_weight": 0.44, "accuracy": 0.842, "mean_recall": 0.7542},  # within 0.1 pt
            {"prior_weight": 0.50, "accuracy": 0.848, "mean_recall": 0.7400}]  # fmt: skip
    assert choose_prior_weight.pick(rows) == 0.44
    assert choose_prior_weight.pick(rows, tie=0.0) == 0.40
    rows[1]["jitter_loss"] = 0.0151  # loses more than 1.5 points on re-framed crops: not picked
    assert choose_prior_weight.pick(rows) == 0.40
    rows[1]["jitter_loss"] = 0.015
    assert choose_prior_weight.pick(rows) == 0.44
    assert (
        choose_prior_weight.WEIGHTS[:3] == (0.0, 0.02, 0.04)
        and choose_prior_weight.WEIGHTS[-1] == 1.0
    )


def test_warm_restart_keeps_frozen_parts_bit_exact(shipped, faces_root, tmp_path):
    """--frozen stem layer1 layer2 layer3: only layer4 and the head move; every frozen weight
    and BatchNorm statistic is as loaded, so the committed model files change only where
    training did. The card names the weights the run started from."""
    run = tmp_path / "warm"
    start = shipped.with_suffix(".pth")
    train.main(["--train", str(faces_root), "--run", str(run), "--epochs", "1", "--bs", "8",
                "--size", "48", "--valid-pct", "0.25", "--threads", "1", "--lr", "0.05",
                "--init", str(start), "--frozen", "stem", "layer1", "layer2", "layer3"])  # fmt: skip
    before = torch.load(start, weights_only=True)
    after = torch.load(run / "final.pth", weights_only=True)
    moved = {k.split(".")[:2] == ["0", "7"] or k.startswith("1.") for k in before
             if before[k].is_floating_point() and not torch.equal(after[k].half(), before[k])}  # fmt: skip
    assert moved == {True}  # something in layer4/the head moved, nothing before it

    out = tmp_path / "warm.onnx"
    export.main(["--run", str(run), "--out", str(out)])
    lineage = json.loads(out.with_suffix(".json").read_text())["recipe"]["started_from"]
    assert lineage["weights"] == str(start) and "layer3 (kept as loaded)" in lineage["trained"]
    assert lineage["recipe"]["epochs"] == 1  # the starting model's own recipe, carried


def test_frozen_parts_need_trained_weights_to_start_from(faces_root, tmp_path):
    with pytest.raises(SystemExit, match="--init"):
        train.main(["--train", str(faces_root), "--run", str(tmp_path / "r"), "--epochs", "1",
                    "--frozen", "layer4"])  # fmt: skip


def test_flip_mean_features_give_the_served_graphs_logits(shipped, faces_root):
    """rebalance --flip-mean fits the last layer on what it sees behind the baked mirror TTA."""
    from emotion.preprocess import to_input
    from training.fit.retrain_classifier import penultimate

    model = export.load_shipped(shipped.with_suffix(".pth")).eval()
    card = ModelCard.read(shipped.with_suffix(".json"))
    faces, _ = readers.read_dataset(faces_root)
    faces = faces[:6]
    last = model[1][-1]
    assert last.bias is None  # the layer rebalance fits is weight-only
    x = torch.from_numpy(to_input([Image.open(f.path) for f in faces], card))
    with torch.no_grad():
        served = export.exported_graph(model, True, None)(x)
        plain = model(x)
    mean = penultimate(model, faces, card, flip_mean=True)
    assert torch.allclose(mean @ last.weight.T, served, atol=1e-4)
    assert torch.allclose(penultimate(model, faces, card) @ last.weight.T, plain, atol=1e-4)
    assert not torch.allclose(served, plain, atol=1e-3)
