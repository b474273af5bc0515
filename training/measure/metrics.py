"""Classification metrics on hard labels and predicted probabilities (numpy only)."""

from __future__ import annotations

import numpy as np


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def confusion(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class; counts."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, probs.argmax(axis=1)), 1)
    return matrix


def recall_per_class(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), totals, out=np.zeros(len(matrix)), where=totals > 0)


def mean_recall(matrix: np.ndarray) -> float:
    """Balanced accuracy: the mean of the per-class recalls over classes that have faces."""
    present = matrix.sum(axis=1) > 0
    return float(recall_per_class(matrix)[present].mean())


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict]:
    """Per equal-width confidence bin: faces, mean top-1 confidence, top-1 accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [
        {
            "bin": [round(float(edges[b]), 4), round(float(edges[b + 1]), 4)],
            "faces": int((which == b).sum()),
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-1 confidence vs accuracy over equal-width confidence bins, weighted by bin size."""
    table = reliability(probs, labels, bins)
    return float(
        sum(r["faces"] * abs(r["accuracy"] - r["confidence"]) for r in table) / len(labels)
    )


def scores(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Faces, accuracy, mean per-class recall and the recall of each class that has faces:
    the before/after block that fine-tuning and recalibration write into their cards."""
    matrix = confusion(probs, labels, len(classes))
    present = matrix.sum(axis=1) > 0
    recall = recall_per_class(matrix)
    return {
        "faces": len(labels),
        "accuracy": round(accuracy(probs, labels), 4),
        "mean_recall": round(mean_recall(matrix), 4),
        "recall": {
            c: round(float(r), 4) for c, r, p in zip(classes, recall, present, strict=True) if p
        },
    }
