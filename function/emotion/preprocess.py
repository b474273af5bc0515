"""Face image -> model input, exactly as the model card says (and as training did)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from emotion.card import ModelCard

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def to_model_image(image: Image.Image, card: ModelCard) -> Image.Image:
    """Colour mode and size the model was trained on (fastai: PILImageBW + Resize)."""
    image = image.convert(card.color_mode)
    side = card.input_size
    if image.size != (side, side):
        image = _center_square(image).resize((side, side), _RESAMPLE[card.resize])
    return image


def to_input(images: list[Image.Image], card: ModelCard) -> np.ndarray:
    """A batch of face crops -> float32 NCHW array, normalised as in training."""
    arrays = [np.asarray(to_model_image(im, card), dtype=np.float32) for im in images]
    batch = np.stack(arrays)[:, None, :, :] / np.float32(255.0)
    return (batch - np.float32(card.mean)) / np.float32(card.std)


def _center_square(image: Image.Image) -> Image.Image:
    # fastai's Resize(method='crop') centre-crops to the target aspect at inference.
    w, h = image.size
    if w == h:
        return image
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))
