"""A per-class shift of the model's answers, learned from labelled faces of the people a model
actually sees (FER+'s annotators call a faint frown Neutral; a person frowning at a camera
means Anger).

q_c ∝ p_c · exp(b_c). b minimises the class-balanced negative log-likelihood of the labels
among the labelled classes (so the fit only reorders the classes it has faces of, and never
learns "an expression nobody showed never happens") plus `penalty · |b|²`, each b_c kept
within ±bound; classes without faces keep 0. It needs faces of two expressions or more.

A bias fitted on a few frames can fit their noise: before it is applied it is cross-validated
on the frames themselves (the j-th frame of every expression held out in fold j % FOLDS, the
bias refitted on the rest) and scaled by the share of SCALES that names the most held-out
frames correctly (ties: the smaller); 0 is the identity. The page's
"Calibrate to my face" fits exactly this in JavaScript (site/js/personal.js; the two are
tested against each other); `make recalibrate` fits it for a deployment and the card's
`recalibration` block carries it, applied by the server after the temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The same settings as site/js/personal.js's FIT (a test reads both).
PENALTY = 0.005
BOUND = 4.0
STEPS = 400  # at most: it stops once no value moves by TOLERANCE
TOLERANCE = 1e-9
FLOOR = 1e-6
FOLDS = 5
SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Recalibration:
    """The card's `recalibration` block, as the server applies it."""

    bias: np.ndarray  # one value per class, in the card's class order
    label: str  # names it in /health and every answer's `model`

    @classmethod
    def from_card(cls, details: dict, classes: Sequence[str]) -> Recalibration | None:
        block = details.get("recalibration")
        if not block:
            return None
        values = block["bias"]
        unknown = set(values) - set(classes)
        if unknown:
            raise ValueError(f"recalibration names unknown classes {sorted(unknown)}")
        bias = np.array([float(values.get(name, 0.0)) for name in classes])
        if not np.all(np.isfinite(bias)) or np.abs(bias).max() > BOUND + 1e-9:
            raise ValueError(f"recalibration values must be finite and within ±{BOUND}")
        return cls(bias=bias, label=str(block["id"]))

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        return adjust(probabilities, self.bias)


def adjust(probabilities: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """q ∝ p · exp(b), row by row."""
    scaled = probabilities * np.exp(bias)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_bias(
    probabilities: np.ndarray,
    labels: np.ndarray,
    penalty: float = PENALTY,
    bound: float = BOUND,
    steps: int = STEPS,
    tolerance: float = TOLERANCE,
) -> np.ndarray:
    """Projected gradient descent with Nesterov momentum (convex, a handful of parameters),
    step for step what personal.js does."""
    n_classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    if not present.any():
        raise ValueError("no labelled faces to fit on")
    # Unlabelled classes drop out of the likelihood (log 0 -> a very negative constant).
    logp = np.where(present, np.log(np.maximum(probabilities, FLOOR)), -1e9)
    weights = np.where(present, 1.0 / np.maximum(counts, 1) / present.sum(), 0.0)[labels]
    onehot = np.eye(n_classes)[labels]
    rate = 1.0 / (0.5 + 2 * penalty)
    bias = previous = np.zeros(n_classes)
    for t in range(1, steps + 1):
        look = bias + (t - 1) / (t + 2) * (bias - previous)
        q = _softmax(logp + look)
        grad = 2 * penalty * look + (weights[:, None] * (q - onehot)).sum(axis=0)
        previous = bias
        bias = np.where(present, np.clip(look - rate * grad, -bound, bound), 0.0)
        if np.abs(bias - previous).max() < tolerance:
            break
    return bias


def mean_recall(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes that have faces."""
    top = probabilities.argmax(axis=1)
    return float(np.mean([np.mean(top[labels == c] == c) for c in np.unique(labels)]))


def folds(labels: np.ndarray) -> np.ndarray:
    """Fold of each face: the j-th face of every class goes to fold j % FOLDS (as many folds as
    the most frequent class has faces, at most FOLDS)."""
    fold = np.zeros(len(labels), dtype=int)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        fold[where] = np.arange(len(where)) % FOLDS
    return fold


def held_out_hits(probabilities: np.ndarray, labels: np.ndarray, **settings) -> np.ndarray:
    """Per scale in SCALES: how many faces the scaled bias, fitted without them, names right."""
    fold = folds(labels)
    hits = np.zeros(len(SCALES), dtype=int)
    for j in range(fold.max() + 1):
        train, test = fold != j, fold == j
        if len(np.unique(labels[train])) < 2:
            continue
        bias = fit_bias(probabilities[train], labels[train], **settings)
        for i, scale in enumerate(SCALES):
            top = adjust(probabilities[test], scale * bias).argmax(axis=1)
            hits[i] += int(np.sum(top == labels[test]))
    return hits


def shrinkage(probabilities: np.ndarray, labels: np.ndarray, **settings) -> float:
    """The share of the bias that cross-validates best (1 when there is nothing to hold out)."""
    if np.bincount(labels).max() < 2:
        return 1.0
    hits = held_out_hits(probabilities, labels, **settings)
    return SCALES[int(np.argmax(hits))]  # argmax takes the first: ties go to the smaller


def fit(probabilities: np.ndarray, labels: np.ndarray, **settings) -> tuple[np.ndarray, str | None]:
    """The bias, or zeros (with the reason) when it names no more held-out faces correctly
    than the model alone, or fewer of the fitting faces."""
    if len(np.unique(labels)) < 2:
        return np.zeros(probabilities.shape[1]), "it needs faces of two expressions or more"
    scale = shrinkage(probabilities, labels, **settings)
    if scale == 0:
        return np.zeros(probabilities.shape[1]), "held-out faces were named no better with it"
    bias = scale * fit_bias(probabilities, labels, **settings)
    if mean_recall(adjust(probabilities, bias), labels) < mean_recall(probabilities, labels):
        return np.zeros_like(bias), "the adjustment named fewer of its own faces correctly"
    return bias, None
