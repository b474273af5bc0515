"""Detector box -> the face crop the classifier sees, framed as the model card's `framing`
block says (measured by training/measure/framing.py so detect -> crop -> classify matches FER+)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from emotion.detect import Detection


@dataclass(frozen=True)
class Framing:
    margin: float = 0.1  # added on every side, as a fraction of the (squared) box side
    square: bool = True  # widen the shorter side to the longer one, about the centre
    shift_y: float = 0.0  # move the centre down by this fraction of the side (+: chin-wards)
    # /face: a crop whose face fills at least this much of it (`fill`) is classified as sent,
    # since re-framing an already tight crop loses accuracy; None: always re-framed.
    as_sent_fill: float | None = None

    @classmethod
    def from_card(cls, details: dict[str, Any]) -> Framing:
        block = details.get("framing") or {}
        fill = (block.get("as_sent") or {}).get("fill")
        framing = cls(
            margin=float(block.get("margin", cls.margin)),
            square=bool(block.get("square", cls.square)),
            shift_y=float(block.get("shift_y", cls.shift_y)),
            as_sent_fill=None if fill is None else float(fill),
        )
        if not (-0.2 <= framing.margin <= 1.0 and -0.5 <= framing.shift_y <= 0.5):
            raise ValueError(f"model card: framing {block} is out of range")
        if fill is not None and not 0 < framing.as_sent_fill <= 2:
            raise ValueError(f"model card: framing.as_sent.fill {fill} is out of range")
        return framing

    @staticmethod
    def fill(face: Detection, size: tuple[int, int]) -> float:
        """How much of a crop (width, height) its face fills: the box's longer side over the
        crop's (about 1 for FER's tight 48 px crops, 0.7 for the live page's 25% margin)."""
        return max(face.width, face.height) / max(size)

    def keeps(self, image: Image.Image, face: Detection | None) -> bool:
        """/face: is the crop classified as sent? Yes without a face or when it fills it."""
        if face is None:
            return True
        return self.as_sent_fill is not None and self.fill(face, image.size) >= self.as_sent_fill

    def region(self, face: Detection) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) in the image's pixels; may reach outside it."""
        w, h = face.width, face.height
        if self.square:
            w = h = max(w, h)
        cx = face.x + face.width / 2
        cy = face.y + face.height / 2 + self.shift_y * h
        w, h = w * (1 + 2 * self.margin), h * (1 + 2 * self.margin)
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def crop(self, image: Image.Image, face: Detection) -> Image.Image:
        return crop_region(image, self.region(face))


def pixel_box(region: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """The whole pixels a region covers (at least one each way): what crop_region cuts."""
    left, top, right, bottom = (round(v) for v in region)
    return left, top, max(right, left + 1), max(bottom, top + 1)


def crop_region(image: Image.Image, region: tuple[float, float, float, float]) -> Image.Image:
    """The region's pixels; parts outside the image repeat its nearest edge (as training's
    reframe does), rather than black bars the model never saw."""
    left, top, right, bottom = pixel_box(region)
    inside = (max(left, 0), max(top, 0), min(right, image.width), min(bottom, image.height))
    if inside == (left, top, right, bottom):
        return image.crop(inside)
    if inside[0] >= inside[2] or inside[1] >= inside[3]:  # wholly outside: nearest edge pixel
        x = min(max(left, 0), image.width - 1)
        y = min(max(top, 0), image.height - 1)
        inside = (x, y, x + 1, y + 1)
    pixels = np.asarray(image.crop(inside))
    pad = [
        (max(inside[1] - top, 0), max(bottom - inside[3], 0)),
        (max(inside[0] - left, 0), max(right - inside[2], 0)),
    ] + [(0, 0)] * (pixels.ndim - 2)
    out = np.pad(pixels, pad, mode="edge")
    return Image.fromarray(out[: bottom - top, : right - left], image.mode)


def refine_crop(image: Image.Image, face: Detection | None, framing: Framing) -> Image.Image:
    """/face: the detector's face inside a client's crop, framed; the crop as sent if none was
    found or the face already fills it (the card's `framing.as_sent.fill`)."""
    return image if framing.keeps(image, face) else framing.crop(image, face)
