"""Images the tests make themselves (never FER+ files): a real face from scikit-image."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw
from skimage import data as skdata


def astronaut_face() -> Image.Image:
    """The face in scikit-image's astronaut photo (a real face that ships with the package)."""
    return Image.fromarray(skdata.astronaut()).crop((140, 20, 260, 140))


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def drawn_face(rng: np.random.Generator, smile: bool, size: int, mode: str) -> Image.Image:
    """A cartoon face: the mouth curves up (happy) or down (sad)."""
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(90, 200, 3)))
    draw = ImageDraw.Draw(image)
    s = size / 48
    draw.ellipse([6 * s, 4 * s, 42 * s, 44 * s], fill=(220, 190, 160))
    for x in (16, 30):
        draw.ellipse([x * s, 16 * s, (x + 4) * s, 20 * s], fill=(30, 30, 30))
    box = [15 * s, 24 * s, 33 * s, 36 * s] if smile else [15 * s, 30 * s, 33 * s, 42 * s]
    draw.arc(box, 20, 160, fill=(80, 20, 20), width=max(1, int(2 * s)))
    if not smile:
        draw.arc(box, 200, 340, fill=(80, 20, 20), width=max(1, int(2 * s)))
    noise = rng.normal(0, 12, (size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)
