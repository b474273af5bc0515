"""/face re-frames only where that helps (issue 21): a crop its face already fills is classified
as sent, a loose one is classified on the detector's face framed as the card says. The limit is
the model card's `framing.as_sent.fill` (measured by training/measure/crop_check.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from emotion.card import CLASSES
from emotion.detect import Detection
from emotion.framing import Framing, crop_region
from face_images import encode

from .conftest import MODEL

PNG = {"content-type": "image/png"}


def camera_crop(detector, margin: float, side: int) -> Image.Image:
    """The cameraman's face: the detector's box squared, `margin` x its side added on every
    side (negative: inside the box, as tight as a FER crop), grayscale, `side` px."""
    photo = Image.fromarray(skdata.camera())
    face = detector.detect(photo)[0]
    return crop_region(photo, Framing(margin=margin).region(face)).resize((side, side))


def answered(client, crop: Image.Image) -> tuple[dict, np.ndarray]:
    body = client.post("/face", content=encode(crop), headers=PNG).json()
    return body, np.array([body["predictions"][c] for c in CLASSES])


def test_the_limit_comes_from_the_model_card(model):
    card = json.loads(MODEL.with_suffix(".json").read_text())
    fill = card["framing"]["as_sent"]["fill"]
    assert Framing.from_card(model.card.details).as_sent_fill == fill


def test_a_tight_crop_is_classified_as_sent(client, model, detector, settings):
    crop = camera_crop(detector, -0.1, 48)  # FER's contract: 48 px, the face fills it
    framing = Framing.from_card(model.card.details)
    face = detector.find_in_crop(crop, settings.crop_detect_side)
    assert framing.fill(face, crop.size) >= framing.as_sent_fill  # the premise
    body, probs = answered(client, crop)
    assert body["face"]["found"] is True  # the check still runs and says where the face is
    assert probs == pytest.approx(model.predict([crop])[0], abs=1e-5)
    refined = model.predict([framing.crop(crop, face)])[0]
    assert np.abs(probs - refined).max() > 1e-3  # the two answers are told apart


def test_a_loose_crop_is_reframed(client, model, detector, settings):
    crop = camera_crop(detector, 0.25, 96)  # the live page's crop: 25% margin, 96 px
    framing = Framing.from_card(model.card.details)
    face = detector.find_in_crop(crop, settings.crop_detect_side)
    assert framing.fill(face, crop.size) < framing.as_sent_fill  # the premise
    body, probs = answered(client, crop)
    assert body["face"]["found"] is True
    assert probs == pytest.approx(model.predict([framing.crop(crop, face)])[0], abs=1e-5)
    assert np.abs(probs - model.predict([crop])[0]).max() > 1e-3


def test_fill_is_the_face_boxs_longer_side_over_the_crops():
    face = Detection(x=10, y=5, width=60, height=80, score=0.9)
    assert Framing.fill(face, (100, 80)) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("limit", "face", "kept"),
    [
        (0.8, None, True),  # no face found: the crop as sent
        (0.8, Detection(0, 0, 40, 80, 0.9), True),  # 80 of 100: fills it
        (0.8, Detection(0, 0, 40, 79, 0.9), False),
        (None, Detection(0, 0, 100, 100, 0.9), False),  # no limit in the card: always framed
    ],
)
def test_keeps(limit, face, kept):
    crop = Image.new("L", (100, 60))
    assert Framing(as_sent_fill=limit).keeps(crop, face) is kept


def test_a_card_without_the_limit_always_reframes_and_a_bad_one_is_refused():
    assert Framing.from_card({"framing": {"margin": 0.1}}).as_sent_fill is None
    with pytest.raises(ValueError, match=r"as_sent\.fill"):
        Framing.from_card({"framing": {"as_sent": {"fill": 0}}})
