"""The shipped model reads real faces that ship in scikit-image, so a random or broken model
fails `make test` itself (not only `make verify-model`, which needs FER+).

Labels were given by eye from the pictures: unmistakable toothy smiles and relaxed, closed
mouths, chosen so that no constant or random answer gets both groups right."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from emotion.model import EmotionModel
from face_images import astronaut_face

# Indices into skimage.data.lfw_subset() (its first 100 images are 25x25 LFW faces).
SMILING = (1, 18, 19, 21, 27, 31, 37, 45, 50, 52, 74, 94)
NEUTRAL = (3, 7, 17, 20, 26, 42, 55, 60, 62, 72, 73, 92)
AT_LEAST = 10  # of each group of 12


def top(model: EmotionModel, images: list[Image.Image]) -> list[str]:
    return [model.card.classes[i] for i in model.predict(images).argmax(axis=1)]


@pytest.fixture(scope="module")
def lfw() -> np.ndarray:
    return skdata.lfw_subset()


def lfw_faces(lfw: np.ndarray, indices: tuple[int, ...]) -> list[Image.Image]:
    return [Image.fromarray((lfw[i] * 255).round().astype(np.uint8)) for i in indices]


def test_the_astronaut_smiles(model):
    face = astronaut_face()  # the face box in skimage's astronaut photo, (140, 20, 260, 140)
    probs = dict(zip(model.card.classes, model.predict([face])[0], strict=True))
    assert max(probs, key=probs.get) == "Happiness", probs
    assert probs["Happiness"] >= 0.5, probs


def test_the_astronaut_smiles_at_webcam_sizes_and_in_colour(model):
    face = astronaut_face()
    images = [face.resize((96, 96)), face.convert("L"), face.resize((240, 240))]
    assert top(model, images) == ["Happiness"] * 3


def test_smiling_and_neutral_faces_from_lfw(model, lfw):
    smiling = top(model, lfw_faces(lfw, SMILING))
    neutral = top(model, lfw_faces(lfw, NEUTRAL))
    assert smiling.count("Happiness") >= AT_LEAST, smiling
    assert neutral.count("Neutral") >= AT_LEAST, neutral
