"""Every probability the API answers is the model's own, for the crop the card's framing gives:
/face and /faces are checked class by class against EmotionModel run here on the same crop, so
a class reported under another's name, a crop framed differently, or a framing field the card
states but serving ignores, all fail."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from emotion.decode import decode_image
from emotion.framing import Framing
from face_images import encode
from face_scenes import group_photo, source

from .conftest import MODEL

PNG = {"content-type": "image/png"}
JPEG = {"content-type": "image/jpeg"}


# Framing's fields and where the card's `framing` block states each.
CARD_KEYS = {"margin": ("margin",), "square": ("square",), "shift_y": ("shift_y",),
             "as_sent_fill": ("as_sent", "fill")}  # fmt: skip


def card_block() -> dict:
    return json.loads(MODEL.with_suffix(".json").read_text())["framing"]


def stated(block: dict, keys: tuple[str, ...]):
    for key in keys:
        block = block[key]
    return block


def card_framing() -> Framing:
    """The framing the card states, read from the JSON file itself (not via Framing.from_card)."""
    return Framing(**{name: stated(card_block(), keys) for name, keys in CARD_KEYS.items()})


def classified_crop(image: Image.Image, face) -> Image.Image:
    """What /face classifies, by the card's own rule (`framing.as_sent.rule`): the crop as sent
    when no face is found or the face's longer side is at least `fill` x the crop's longer
    side; else the face, framed."""
    fill = card_block()["as_sent"]["fill"]
    if face is None or max(face.width, face.height) >= fill * max(image.size):
        return image
    return card_framing().crop(image, face)


def expected(model, crops: list[Image.Image]) -> list[dict[str, float]]:
    """{class: probability} per crop as the API rounds it: the network's logits, softmax at the
    temperature the card file states, each class named from the card's own order."""
    card = json.loads(MODEL.with_suffix(".json").read_text())
    logits = model.logits(crops) / card["temperature"]
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return [
        {name: round(float(p), 6) for name, p in zip(card["classes"], row, strict=True)}
        for row in probabilities
    ]


def page_crops() -> dict[str, Image.Image]:
    """Crops as the page sends them (96 px, grayscale), and one without a face."""
    astronaut = Image.fromarray(skdata.astronaut()).crop((130, 30, 320, 220))
    camera = source("camera").image.crop((10, 10, 140, 140))
    coffee = Image.fromarray(skdata.coffee()).crop((200, 100, 296, 172))  # not square
    return {
        "astronaut": astronaut.convert("L").resize((96, 96)),
        "cameraman": camera.convert("L").resize((96, 96)),
        "cameraman, colour, large": camera.resize((300, 300)),
        "astronaut, tight": astronaut.crop((35, 25, 150, 140)).convert("L").resize((96, 96)),
        "cameraman, tight": source("camera").image.crop((40, 55, 115, 130)).convert("L"),
        "no face": coffee,
    }


@pytest.mark.parametrize("name", list(page_crops()))
def test_face_answers_the_models_probabilities_for_the_framed_crop(
    client, model, detector, settings, name
):
    crop = page_crops()[name]
    raw = encode(crop)
    body = client.post("/face", content=raw, headers=PNG).json()
    image = decode_image(raw, settings.max_pixels, settings.min_side)
    found = detector.find_in_crop(image, settings.crop_detect_side)
    assert body["face"]["found"] is (found is not None)
    classified = classified_crop(image, found)
    (answer,) = expected(model, [classified])
    assert body["predictions"] == answer  # every class, under its own name
    # `region` says what was classified: the whole crop, or the framed face.
    whole = {"x": 0, "y": 0, "width": image.width, "height": image.height}
    if found is None:
        assert body["face"] == {"found": False, "score": 0.0, "box": whole, "region": whole}
    elif classified is image:
        assert body["face"]["region"] == whole
    else:
        left, top, right, bottom = (round(v) for v in card_framing().region(found))
        assert body["face"]["region"] == {"x": left, "y": top, "width": right - left,
                                          "height": bottom - top}  # fmt: skip
    values = list(body["predictions"].values())
    assert values == sorted(values, reverse=True)


def test_the_crops_take_both_ways(detector, settings):
    """Among the crops above, faces re-framed and faces kept as sent (and no face)."""
    kept, reframed, none = 0, 0, 0
    for crop in page_crops().values():
        image = decode_image(encode(crop), settings.max_pixels, settings.min_side)
        face = detector.find_in_crop(image, settings.crop_detect_side)
        none += face is None
        kept += face is not None and classified_crop(image, face) is image
        reframed += classified_crop(image, face) is not image
    assert kept >= 2 and reframed >= 2 and none == 1


def test_the_cameramans_crop_tells_every_class_apart(client):
    """The check above can see a swap of two classes only where they differ: here all 8 do."""
    raw = encode(page_crops()["cameraman"])
    values = client.post("/face", content=raw, headers=PNG).json()["predictions"].values()
    assert len(set(values)) == 8


def test_faces_answers_the_models_probabilities_for_each_framed_face(
    client, model, detector, settings
):
    photo, truth = group_photo()
    raw = encode(photo, "JPEG", quality=90)
    body = client.post("/faces?max_faces=50&min_size=0", content=raw, headers=JPEG).json()
    image = decode_image(raw, settings.max_pixels, settings.min_side)
    found = detector.detect(image, max_side=settings.detect_side, min_size=0)
    assert len(body["faces"]) == len(found) == len(truth)
    framing = card_framing()
    crops = [framing.crop(image, face) for face in found]
    answers = expected(model, crops)  # one batch, as the app runs it
    for face, detection, answer in zip(body["faces"], found, answers, strict=True):
        box = detection.as_box()  # the same face, in the same order (clipping may shift 1 px)
        assert all(abs(face["box"][k] - box[k]) <= 1 for k in box), (face["box"], box)
        assert face["predictions"] == answer
    # Not vacuous: the framed crop and the bare detector box give different answers here.
    bare = model.predict([image.crop((f.x, f.y, f.x + f.width, f.y + f.height)) for f in found])
    assert np.abs(bare - model.predict(crops)).max() > 0.01


def test_framing_built_from_the_card_is_the_card_every_field(model):
    block = card_block()
    framing = Framing.from_card(model.card.details)
    # Every Framing field is stated in the card, and every setting the block holds is a field
    # (the rest is its record: the rule and how it was measured).
    assert set(CARD_KEYS) == {f.name for f in dataclasses.fields(Framing)}
    assert set(block) - {"rule", "measured"} == {keys[0] for keys in CARD_KEYS.values()}
    assert dataclasses.asdict(framing) == {n: stated(block, k) for n, k in CARD_KEYS.items()}


def test_framing_reads_every_field_even_when_not_the_default():
    """The shipped card may equal a default (square: true); a card that sets every field to
    something else must get all of them."""
    defaults = Framing()
    changed = {"margin": defaults.margin + 0.2, "square": not defaults.square,
               "shift_y": defaults.shift_y - 0.15, "as_sent_fill": 0.5}  # fmt: skip
    assert set(changed) == set(CARD_KEYS) and changed["as_sent_fill"] != defaults.as_sent_fill
    block: dict = {}
    for name, keys in CARD_KEYS.items():
        inner = block
        for key in keys[:-1]:
            inner = inner.setdefault(key, {})
        inner[keys[-1]] = changed[name]
    assert dataclasses.asdict(Framing.from_card({"framing": block})) == pytest.approx(changed)
