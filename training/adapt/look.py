"""Replay faces shown in the look of the user's own: the same tone curve and sharpness.

A folder from one camera differs from FER+ in light, contrast and focus. Fine-tuning on it
teaches the early layers that camera, and teaches the rest that faces in its look are only
the folder's classes (a folder without Neutral: the camera's faces are never Neutral). Replay
faces of every class re-rendered in the folder's look teach the camera without that lie.

The look is measured, not guessed: the folder's pooled grey-level distribution (each replay
face is histogram-matched to it, by mapping its cumulative distribution onto the folder's) and
its sharpness (the mean absolute Laplacian over the contrast, at the model's input size; a
Gaussian blur of the replay faces is chosen to match it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

BLURS = tuple(round(0.25 * i, 2) for i in range(9))  # Gaussian radii tried, in source pixels
SAMPLE = 200  # replay faces the blur is chosen on


@dataclass(frozen=True)
class Look:
    levels: np.ndarray  # the folder's grey levels, sorted (uint8), and
    cdf: np.ndarray  # the share of its pixels at or below each
    blur: float  # Gaussian radius that gives replay faces the folder's sharpness

    def render(self, image: Image.Image) -> Image.Image:
        face = np.asarray(image.convert("L"))
        levels, counts = np.unique(face, return_counts=True)
        mapped = np.interp(np.cumsum(counts) / face.size, self.cdf, self.levels)
        toned = Image.fromarray(np.round(mapped[np.searchsorted(levels, face)]).astype(np.uint8))
        return toned.filter(ImageFilter.GaussianBlur(self.blur)) if self.blur else toned


def grey(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((side, side), Image.Resampling.BILINEAR))


def sharpness(faces: list[np.ndarray]) -> float:
    """Mean absolute Laplacian over each face's own contrast (its standard deviation): the
    edges' steepness, whatever the tone curve did to their height."""
    values = []
    for face in faces:
        pixels = face.astype(np.float32)
        values.append(np.abs(ndimage.laplace(pixels)).mean() / max(float(pixels.std()), 1.0))
    return float(np.mean(values))


def measure(own: list[Path], replay: list[Path], side: int, seed: int = 0) -> Look:
    """The look of `own` (the user's training faces), and the blur that gives `replay` faces
    its sharpness once toned; `side` is the model's input size, where sharpness is compared."""
    faces = [grey(p, side) for p in own]
    pixels = np.concatenate([f.ravel() for f in faces])
    levels, counts = np.unique(pixels, return_counts=True)
    levels, cdf = levels.astype(np.float64), np.cumsum(counts) / pixels.size
    wanted = sharpness(faces)
    rng = np.random.default_rng(seed)
    sample = []
    for i in rng.permutation(len(replay))[:SAMPLE]:
        with Image.open(replay[i]) as image:
            sample.append(image.convert("L"))

    def sharpness_at(blur: float) -> float:
        candidate = Look(levels, cdf, blur)
        resized = (candidate.render(face).resize((side, side), Image.Resampling.BILINEAR)
                   for face in sample)  # fmt: skip
        return sharpness([np.asarray(face) for face in resized])

    return Look(levels, cdf, min(BLURS, key=lambda b: abs(sharpness_at(b) - wanted)))
