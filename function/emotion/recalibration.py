"""A personal adjustment of the model's answers, learned from labelled faces of the people a
model actually sees (FER+'s annotators call a faint frown Neutral; a person frowning at a
camera means Anger).

q ∝ p · exp(b + M·u), u = log(max(p, FLOOR)) / LOG_RANGE (the log-probabilities scaled into
[-1, 0]). Two kinds, both fitted by minimising the class-balanced negative log-likelihood of
the labels among the labelled classes (so the fit only reorders the classes it has faces of,
and never learns "an expression nobody showed never happens") plus a penalty pulling toward
the identity, every value kept within ±bound; classes without faces keep 0:

- `class-bias`: M = 0, one bias per class (`penalty · |b|²`);
- `class-map`: also M, 8 x 8 (`map_penalty · |M|²`), so that a class the model reads as
  another can be told apart by the rest of its answer (a person's Fear read as Neutral with
  some Surprise, their Neutral read as Neutral with some Sadness), which no bias can.

A fit on a few frames can fit their noise: before anything is applied both kinds are
cross-validated on the frames themselves (the j-th frame of every expression held out in fold
j % FOLDS, refitted on the rest), and the kind and the share of it (SCALES) that name the most
held-out frames correctly are applied (the map only if it names MAP_MARGIN more than the bias;
ties: the smaller share; 0 is the identity).
The map is only tried where something can be held out. The page's "Calibrate to my face" fits
exactly this in JavaScript (site/js/personal.js; the two are tested against each other);
`make recalibrate` fits it for a deployment and the card's `recalibration` block carries it,
applied by the server after the temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The same settings as site/js/personal.js's FIT (a test reads both).
PENALTY = 0.005
MAP_PENALTY = 0.0003
# The map only where it names at least this many more held-out frames right than the bias:
# on faces of other people (bench.personal's pessimistic case) it otherwise wins by noise.
MAP_MARGIN = 4
BOUND = 4.0
STEPS = 200  # at most: it stops once no value moves by TOLERANCE
TOLERANCE = 1e-9
FLOOR = 1e-6
FOLDS = 5
PER_CLASS = 10  # frames of each expression that enter the page's fit (None: all)
SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)
LOG_RANGE = float(-np.log(FLOOR))  # u = log p / LOG_RANGE lies in [-1, 0]


@dataclass(frozen=True)
class Adjustment:
    """b (one value per class) and M (class x class; zeros for a `class-bias`)."""

    bias: np.ndarray
    mapping: np.ndarray

    @classmethod
    def identity(cls, n_classes: int) -> Adjustment:
        return cls(np.zeros(n_classes), np.zeros((n_classes, n_classes)))

    @property
    def kind(self) -> str:
        return "class-map" if np.any(self.mapping) else "class-bias"

    def scaled(self, share: float) -> Adjustment:
        return Adjustment(share * self.bias, share * self.mapping)

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        # A bias alone needs no log-probabilities (the server applies it to every answer).
        mapping = self.mapping if self.kind == "class-map" else None
        return adjust(probabilities, self.bias, mapping)


@dataclass(frozen=True)
class Recalibration:
    """The card's `recalibration` block, as the server applies it."""

    adjustment: Adjustment
    label: str  # names it in /health and every answer's `model`

    @classmethod
    def from_card(cls, details: dict, classes: Sequence[str]) -> Recalibration | None:
        block = details.get("recalibration")
        if not block:
            return None
        rows = block.get("map") or {}
        unknown = set(rows) - set(classes)
        if unknown:
            raise ValueError(f"recalibration's map names unknown classes {sorted(unknown)}")
        bias = _values(block["bias"], classes)
        mapping = np.array([_values(rows.get(name, {}), classes) for name in classes])
        return cls(Adjustment(bias, mapping), str(block["id"]))

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        return self.adjustment.apply(probabilities)


def _values(values: dict, classes: Sequence[str]) -> np.ndarray:
    unknown = set(values) - set(classes)
    if unknown:
        raise ValueError(f"recalibration names unknown classes {sorted(unknown)}")
    out = np.array([float(values.get(name, 0.0)) for name in classes])
    if not np.all(np.isfinite(out)) or np.abs(out).max() > BOUND + 1e-9:
        raise ValueError(f"recalibration values must be finite and within ±{BOUND}")
    return out


def features(probabilities: np.ndarray) -> np.ndarray:
    """u: the log-probabilities scaled into [-1, 0]."""
    return np.log(np.maximum(probabilities, FLOOR)) / LOG_RANGE


def adjust(
    probabilities: np.ndarray, bias: np.ndarray, mapping: np.ndarray | None = None
) -> np.ndarray:
    """q ∝ p · exp(b + M·u), row by row."""
    shift = bias if mapping is None else bias + features(probabilities) @ mapping.T
    scaled = probabilities * np.exp(shift - np.max(shift, axis=-1, keepdims=True))
    return scaled / scaled.sum(axis=-1, keepdims=True)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_adjustment(
    probabilities: np.ndarray,
    labels: np.ndarray,
    with_map: bool = False,
    penalty: float = PENALTY,
    map_penalty: float = MAP_PENALTY,
    bound: float = BOUND,
    steps: int = STEPS,
    tolerance: float = TOLERANCE,
) -> Adjustment:
    """Projected gradient descent with Nesterov momentum (convex, at most 72 values), step for
    step what personal.js does."""
    n_classes = probabilities.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    if not present.any():
        raise ValueError("no labelled faces to fit on")
    # Unlabelled classes drop out of the likelihood (log 0 -> a very negative constant).
    logp = np.where(present, np.log(np.maximum(probabilities, FLOOR)), -1e9)
    u = features(probabilities) if with_map else np.zeros_like(probabilities)
    weights = np.where(present, 1.0 / np.maximum(counts, 1) / present.sum(), 0.0)[labels]
    onehot = np.eye(n_classes)[labels]
    # The loss's curvature is at most 1/2 · (1 + |u|²) per unit of weight (weights sum to 1).
    curvature = 0.5 * (1 + float(np.max(np.sum(u * u, axis=1))))
    rate = 1.0 / (curvature + 2 * max(penalty, map_penalty if with_map else 0.0))
    keep = present[:, None] & with_map
    bias = previous_bias = np.zeros(n_classes)
    mapping = previous_map = np.zeros((n_classes, n_classes))
    for t in range(1, steps + 1):
        momentum = (t - 1) / (t + 2)
        look_bias = bias + momentum * (bias - previous_bias)
        look_map = mapping + momentum * (mapping - previous_map)
        residual = weights[:, None] * (_softmax(logp + look_bias + u @ look_map.T) - onehot)
        grad_bias = 2 * penalty * look_bias + residual.sum(axis=0)
        grad_map = 2 * map_penalty * look_map + residual.T @ u
        previous_bias, previous_map = bias, mapping
        bias = np.where(present, np.clip(look_bias - rate * grad_bias, -bound, bound), 0.0)
        mapping = np.where(keep, np.clip(look_map - rate * grad_map, -bound, bound), 0.0)
        moved = max(np.abs(bias - previous_bias).max(), np.abs(mapping - previous_map).max())
        if moved < tolerance:
            break
    return Adjustment(bias, mapping)


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


def held_out_hits(
    probabilities: np.ndarray, labels: np.ndarray, with_map: bool = False, **settings
) -> np.ndarray:
    """Per share in SCALES: how many faces the scaled fit, made without them, names right."""
    fold = folds(labels)
    hits = np.zeros(len(SCALES), dtype=int)
    for j in range(fold.max() + 1):
        train, test = fold != j, fold == j
        if len(np.unique(labels[train])) < 2:
            continue
        fitted = fit_adjustment(probabilities[train], labels[train], with_map, **settings)
        for i, share in enumerate(SCALES):
            top = fitted.scaled(share).apply(probabilities[test]).argmax(axis=1)
            hits[i] += int(np.sum(top == labels[test]))
    return hits


def choose(
    probabilities: np.ndarray,
    labels: np.ndarray,
    allow_map: bool = True,
    map_margin: int = MAP_MARGIN,
    **settings,
) -> tuple[bool, float]:
    """(with the map?, the share) that cross-validates best; the whole bias when there is
    nothing to hold out."""
    if np.bincount(labels).max() < 2:
        return False, 1.0
    by_bias = held_out_hits(probabilities, labels, False, **settings)
    by_map = held_out_hits(probabilities, labels, True, **settings) if allow_map else by_bias
    if by_map.max() >= by_bias.max() + map_margin:
        return True, SCALES[int(np.argmax(by_map))]
    return False, SCALES[int(np.argmax(by_bias))]  # argmax takes the first: the smaller


def thinned(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    """Indices of at most per_class faces of each class, evenly spaced through the ones given
    (3 s of capture are dozens of near-identical frames; ten keep the page's fit within 50 ms)."""
    if not per_class:
        return np.arange(len(labels))
    keep = []
    for c in range(int(labels.max()) + 1):
        own = np.flatnonzero(labels == c)
        if len(own) > per_class:
            n = len(own) - 1
            own = own[[int(np.floor(i * n / (per_class - 1) + 0.5)) for i in range(per_class)]]
        keep.extend(own.tolist())
    return np.array(keep, dtype=int)


def fit(
    probabilities: np.ndarray,
    labels: np.ndarray,
    per_class: int | None = PER_CLASS,
    allow_map: bool = True,
    map_margin: int = MAP_MARGIN,
    **settings,
) -> tuple[Adjustment, str | None]:
    """The adjustment, or the identity (with the reason) when it names no more held-out faces
    correctly than the model alone, or fewer of the fitting faces."""
    kept = thinned(labels, per_class)
    probabilities, labels = probabilities[kept], labels[kept]
    identity = Adjustment.identity(probabilities.shape[1])
    if len(np.unique(labels)) < 2:
        return identity, "it needs faces of two expressions or more"
    with_map, share = choose(probabilities, labels, allow_map, map_margin, **settings)
    if share == 0:
        return identity, "held-out faces were named no better with it"
    fitted = fit_adjustment(probabilities, labels, with_map, **settings).scaled(share)
    if mean_recall(fitted.apply(probabilities), labels) < mean_recall(probabilities, labels):
        return identity, "the adjustment named fewer of its own faces correctly"
    return fitted, None
