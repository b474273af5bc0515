"""Temperature scaling: it finds a known temperature, fixes under-confidence, keeps every
prediction's class, and the card carries it to serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotion.card import ModelCard
from emotion.model import EmotionModel, softmax
from face_images import astronaut_face
from training.measure import metrics
from training.ship import calibrate

ROOT = Path(__file__).resolve().parents[2]


def under_confident(n: int, true_temperature: float, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 8))
    probs = softmax(logits / true_temperature)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.0])
def test_fit_recovers_the_temperature_that_generated_the_labels(true_temperature):
    logits, labels = under_confident(20_000, true_temperature)
    assert calibrate.fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.08)


def test_calibration_fixes_under_confidence_and_keeps_every_class():
    logits, labels = under_confident(6_000, 0.5)
    result = calibrate.calibrate(logits, labels, folds=2, seed=0)
    assert result["ece_15_bins_before"] > 0.1
    assert result["ece_15_bins_after"] < 0.03
    assert result["ece_15_bins_cross_fitted_2_fold"] < 0.03
    assert result["nll_after"] < result["nll_before"]
    calibrated = softmax(logits / result["temperature"])
    assert (calibrated.argmax(1) == logits.argmax(1)).all()
    assert metrics.accuracy(calibrated, labels) == metrics.accuracy(softmax(logits), labels)


@pytest.mark.parametrize("temperature", [0.0, -1.0, 1e6])
def test_card_rejects_an_impossible_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        ModelCard("m", "1", ("A", "B"), 48, "L", 0.5, 0.25, temperature=temperature)


def test_a_card_without_temperature_means_plain_softmax(tmp_path):
    card = json.loads((ROOT / "models" / "emotion.json").read_text())
    card.pop("temperature")
    (tmp_path / "card.json").write_text(json.dumps(card))
    assert ModelCard.read(tmp_path / "card.json").temperature == 1.0


def test_serving_applies_the_cards_temperature(tmp_path):
    shipped = EmotionModel(ROOT / "models" / "emotion.onnx")
    (tmp_path / "emotion.onnx").symlink_to(ROOT / "models" / "emotion.onnx")
    card = json.loads((ROOT / "models" / "emotion.json").read_text())
    card["temperature"] = 2.5
    (tmp_path / "emotion.json").write_text(json.dumps(card))
    warmer = EmotionModel(tmp_path / "emotion.onnx")

    face = [astronaut_face().resize((96, 96))]
    logits = shipped.logits(face)
    assert np.allclose(warmer.logits(face), logits)
    assert np.allclose(warmer.predict(face), softmax(logits / 2.5))
    assert np.allclose(shipped.predict(face), softmax(logits / shipped.card.temperature))
    assert warmer.predict(face).max() < shipped.predict(face).max()  # warmer: less sure


def test_ece_and_reliability_on_hand_made_cases():
    sure = np.tile([0.8, 0.2], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)  # 80% right at 0.8 confidence: calibrated
    assert metrics.expected_calibration_error(sure, labels) == pytest.approx(0.0)
    (row,) = metrics.reliability(sure, labels, 15)
    assert row["faces"] == 10 and row["confidence"] == pytest.approx(0.8)
    assert row["accuracy"] == pytest.approx(0.8)
    overconfident = np.tile([1.0, 0.0], (10, 1))
    assert metrics.expected_calibration_error(overconfident, labels) == pytest.approx(0.2)
