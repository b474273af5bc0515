"""Images the tests make themselves (never FER+ files): a real face from scikit-image."""

from __future__ import annotations

import base64
import io

from PIL import Image
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
