"""How a face is framed and degraded at run time, applied to training faces.

Live faces come from a detector box (tracking.js, the server's detector), not FER+'s careful
framing, and from webcams: JPEG, blur, odd light. `reframe` moves and scales the box; training
draws it at random (`LiveCropAugment`), evaluation draws it once from a fixed seed
(`jittered_frames`), so both use the same geometry.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from fastai.vision.all import PILImageBW, Transform
from PIL import Image, ImageFilter

# Each live-crop change's chance at strength 1 (LiveCropAugment scales them all).
CHANCES = {"frame": 0.8, "blur": 0.3, "gamma": 0.4, "jpeg": 0.3, "patch": 0.2}


@dataclass(frozen=True)
class Frame:
    scale: float  # box side / original side (>1: more context, <1: tighter)
    dx: float  # box centre shift, fraction of the side
    dy: float
    angle: float  # degrees, counter-clockwise


def random_frame(
    rng: random.Random, scale: float = 0.15, shift: float = 0.10, rotate: float = 15.0
) -> Frame:
    return Frame(
        scale=rng.uniform(1 - scale, 1 + scale),
        dx=rng.uniform(-shift, shift),
        dy=rng.uniform(-shift, shift),
        angle=rng.uniform(-rotate, rotate),
    )


def reframe(image: Image.Image, frame: Frame) -> Image.Image:
    """The crop a detector box moved/scaled/rotated by `frame` would give, same pixel size.

    Pixels outside the original are filled with the nearest edge, as a crop clamped to a
    larger photo would show more of the same background rather than black.
    """
    w, h = image.size
    pad = max(w, h)
    pixels = np.asarray(image)
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (pixels.ndim - 2)
    big = Image.fromarray(np.pad(pixels, widths, mode="edge"))
    if frame.angle:
        big = big.rotate(frame.angle, resample=Image.Resampling.BILINEAR)
    side_w, side_h = w * frame.scale, h * frame.scale
    cx, cy = pad + w / 2 + frame.dx * w, pad + h / 2 + frame.dy * h
    box = (cx - side_w / 2, cy - side_h / 2, cx + side_w / 2, cy + side_h / 2)
    return big.resize((w, h), Image.Resampling.BILINEAR, box=box)


def degrade(image: Image.Image, rng: random.Random, strength: float = 1.0) -> Image.Image:
    """Webcam-like damage, each with its own chance (times `strength`): blur, gamma, JPEG, an
    occluding patch."""
    if rng.random() < CHANCES["blur"] * strength:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.8)))
    if rng.random() < CHANCES["gamma"] * strength:
        gamma = rng.uniform(0.6, 1.6)
        image = image.point([round(255 * (i / 255) ** gamma) for i in range(256)] * len(
            image.getbands()))  # fmt: skip
    if rng.random() < CHANCES["jpeg"] * strength:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(30, 90))
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    # An occluding patch: a hand, a glasses frame or hair across part of the face.
    if rng.random() < CHANCES["patch"] * strength:
        w, h = image.size
        pw, ph = int(w * rng.uniform(0.15, 0.4)), int(h * rng.uniform(0.15, 0.4))
        x, y = rng.randrange(0, w - pw + 1), rng.randrange(0, h - ph + 1)
        image = image.copy()
        image.paste(rng.randrange(0, 256), (x, y, x + pw, y + ph))
    return image


class LiveCropAugment(Transform):
    """Training split only (split_idx=0): a random detector-style frame, then degradation.

    `strength` scales every chance (1: frame p 0.8 and the full `degrade`; 0.5: half as often).
    """

    split_idx = 0
    order = 0  # before Resize, on the original pixels

    def __init__(self, strength: float = 1.0, seed: int | None = None):
        super().__init__()
        self.strength = strength
        self.rng = random.Random(seed)

    def encodes(self, image: PILImageBW) -> PILImageBW:
        out: Image.Image = image
        if self.rng.random() < CHANCES["frame"] * self.strength:
            out = reframe(out, random_frame(self.rng))
        return PILImageBW.create(np.asarray(degrade(out, self.rng, self.strength)))


def jittered_frames(count: int, seed: int = 2026) -> list[Frame]:
    """The fixed, seeded frames `make eval` re-crops Valid with (rotation kept within 10)."""
    rng = random.Random(seed)
    return [random_frame(rng, rotate=10.0) for _ in range(count)]
