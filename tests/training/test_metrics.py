"""The metrics the card publishes, on cases small enough to compute by hand.

The confusion matrix is not symmetric, and its row sums differ from its column sums, so a
transposed matrix (or recall computed over columns: precision) fails here."""

from __future__ import annotations

import numpy as np
import pytest

from training.measure import metrics


def one_hot(predicted: list[int], n_classes: int, confidence: float = 0.9) -> np.ndarray:
    """Probabilities whose top class is `predicted` with the given confidence."""
    rest = (1 - confidence) / (n_classes - 1)
    probs = np.full((len(predicted), n_classes), rest)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


# 7 faces, 3 classes. True 0 (3 faces): predicted 0, 0, 1. True 1 (2): 1, 2. True 2 (2): 0, 0.
LABELS = np.array([0, 0, 0, 1, 1, 2, 2])
PREDICTED = [0, 0, 1, 1, 2, 0, 0]
# Rows: true class; columns: predicted class.
MATRIX = np.array(
    [
        [2, 1, 0],
        [0, 1, 1],
        [2, 0, 0],
    ]
)


def test_confusion_rows_are_the_true_class():
    matrix = metrics.confusion(one_hot(PREDICTED, 3), LABELS, 3)
    assert matrix.tolist() == MATRIX.tolist()
    assert matrix.sum(axis=1).tolist() == [3, 2, 2]  # faces per true class
    assert matrix.sum(axis=0).tolist() == [4, 2, 1]  # answers per predicted class


def test_recall_is_the_diagonal_over_true_counts():
    recall = metrics.recall_per_class(MATRIX)
    assert recall == pytest.approx([2 / 3, 1 / 2, 0.0])
    # Over columns it would be precision, [2/4, 1/2, 0]: the first class tells them apart.
    assert recall[0] != pytest.approx(2 / 4)


def test_recall_of_a_class_without_faces_is_zero_not_nan():
    matrix = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 1]])
    assert metrics.recall_per_class(matrix) == pytest.approx([3 / 4, 0.0, 1 / 2])


def test_mean_recall_averages_the_classes_that_have_faces():
    assert metrics.mean_recall(MATRIX) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    no_faces_in_1 = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 1]])
    assert metrics.mean_recall(no_faces_in_1) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_accuracy_is_the_trace_over_all_faces():
    assert metrics.accuracy(one_hot(PREDICTED, 3), LABELS) == pytest.approx(3 / 7)


def test_full_size_confusion_from_the_cards_own_counts():
    """Eight classes, as the card stores them: recall read along rows."""
    counts = np.diag([10, 20, 30, 40, 50, 60, 70, 80])
    counts[6, 5] = 70  # 70 Contempt faces answered Neutral: Contempt recall 0.5
    counts[5, 6] = 0
    recall = metrics.recall_per_class(counts)
    assert recall[6] == pytest.approx(0.5)
    assert recall[5] == pytest.approx(1.0)  # Neutral lost no face (its precision did)


# Two classes, four faces: (top-1 confidence, right?) = (.95, yes), (.95, yes), (.85, no),
# (.55, yes). Ten bins: (0.9, 1.0] has 2 faces, conf .95, acc 1; (0.8, 0.9] 1 face, conf .85,
# acc 0; (0.5, 0.6] 1 face, conf .55, acc 1. ECE = (2*.05 + 1*.85 + 1*.45) / 4 = 0.35.
CAL_PROBS = np.array([[0.95, 0.05], [0.05, 0.95], [0.85, 0.15], [0.45, 0.55]])
CAL_LABELS = np.array([0, 1, 1, 1])


def test_reliability_bins_by_hand():
    table = metrics.reliability(CAL_PROBS, CAL_LABELS, bins=10)
    got = [(r["bin"], r["faces"], r["confidence"], r["accuracy"]) for r in table]
    assert got == [
        ([0.5, 0.6], 1, pytest.approx(0.55), 1.0),
        ([0.8, 0.9], 1, pytest.approx(0.85), 0.0),
        ([0.9, 1.0], 2, pytest.approx(0.95), 1.0),
    ]


def test_expected_calibration_error_by_hand():
    assert metrics.expected_calibration_error(CAL_PROBS, CAL_LABELS, 10) == pytest.approx(0.35)


def test_perfectly_calibrated_and_certain_is_zero():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])  # confidence 1.0 lands in the last bin
    assert metrics.expected_calibration_error(probs, np.array([0, 1]), 15) == pytest.approx(0.0)
    assert metrics.reliability(probs, np.array([0, 1]), 15)[0]["faces"] == 2
