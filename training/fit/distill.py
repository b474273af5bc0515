"""Distillation targets: each training face's target becomes a blend of its annotators' votes
and a teacher's answer for it, read from the members' committed answers (`.npz` files that
`python -m training.measure.teacher add` writes: logits on every FER+ Train face, the faces'
file names, the member's temperature), so distilling needs no teacher weights.

The teacher's answer is the mean of its members' probabilities, each at its own temperature
(the ensemble that `teacher report` scores).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from training.data.readers import Face


def member_files(paths: list[Path]) -> list[Path]:
    """`.npz` files as given, and every `.npz` in a folder given."""
    files = []
    for path in paths:
        found = sorted(path.glob("*.npz")) if path.is_dir() else [path]
        if not found or not all(f.is_file() for f in found):
            raise SystemExit(f"{path}: no teacher answers (.npz) there")
        files += found
    return files


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def teacher_probabilities(files: list[Path]) -> dict[str, np.ndarray]:
    """File name -> the ensemble's probabilities on that Train face."""
    names, probs = None, []
    for path in files:
        stored = np.load(path)
        if names is None:
            names = stored["train_names"]
        elif not np.array_equal(stored["train_names"], names):
            raise SystemExit(f"{path}: its Train rows are not the other members' faces")
        logits = stored["train_logits"].astype(np.float64)
        probs.append(_softmax(logits / float(stored["temperature"])))
    mean = np.mean(probs, axis=0).astype(np.float32)
    return dict(zip(names.tolist(), mean, strict=True))


def distilled(faces: list[Face], teacher: dict[str, np.ndarray], weight: float) -> list[Face]:
    """Each face with target (1 - weight) * votes + weight * teacher; a face the teacher never
    saw is an error (the answers belong to another split or another copy of FER+)."""
    missing = [f.path.name for f in faces if f.path.name not in teacher]
    if missing:
        raise SystemExit(f"the teacher has no answer for {len(missing)} faces, e.g. {missing[0]}")
    out = []
    for face in faces:
        blend = (1 - weight) * face.target + weight * teacher[face.path.name]
        out.append(dataclasses.replace(face, votes=tuple(float(v) for v in blend)))
    return out
