"""POST /faces (every face in a photo) and /face's `face` block, against the real models."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from starlette.testclient import TestClient

from emotion.app import create_app
from emotion.card import CLASSES
from emotion.detect import Detection
from emotion.framing import Framing, crop_region
from face_images import data_url, encode
from face_scenes import group_photo, matches

from .conftest import MODEL

JPEG = {"content-type": "image/jpeg"}


@pytest.fixture(scope="module")
def group() -> tuple[bytes, list]:
    photo, truth = group_photo()
    return encode(photo, "JPEG", quality=90), truth


def assert_predictions(predictions: dict) -> None:
    values = list(predictions.values())
    assert sorted(predictions) == sorted(CLASSES)
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(1, abs=1e-4)


def test_every_face_in_a_group_photo_with_box_and_emotions(client, group):
    raw, truth = group
    response = client.post("/faces", content=raw, headers=JPEG)
    assert response.status_code == 200
    body = response.json()
    assert body["image"] == {"width": 1280, "height": 720}
    assert body["model"].startswith("emotion-") and body["detector"].startswith("retinaface")
    assert set(body["timings_ms"]) == {"decode", "detect", "classify"}
    assert "detect;dur=" in response.headers["server-timing"]
    faces = body["faces"]
    assert len(faces) == len(truth)
    for true_face in truth:
        assert any(matches(f["box"], true_face) for f in faces), true_face
    areas = [f["box"]["width"] * f["box"]["height"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    for face in faces:
        assert_predictions(face["predictions"])
        assert face["top"] == next(iter(face["predictions"]))
        assert 0.5 < face["score"] <= 1
    # the astronaut smiles broadly at every size she appears in
    astronaut = next(f for f in faces if matches(f["box"], truth[0]))
    assert astronaut["top"] == "Happiness"


def test_no_face_is_200_with_an_empty_list(client):
    raw = encode(Image.fromarray(skdata.coffee()), "JPEG")
    response = client.post("/faces", content=raw, headers=JPEG)
    assert response.status_code == 200
    assert response.json()["faces"] == []


def test_all_input_shapes_are_accepted(client):
    raw = encode(Image.fromarray(skdata.astronaut()), "JPEG")
    url = data_url(raw, "image/jpeg")
    responses = [
        client.post("/faces", data={"imgBase64": url}),
        client.post("/faces", json={"imgBase64": url}),
        client.post("/faces", content=raw, headers=JPEG),
        client.post("/faces", files={"image": ("photo.jpg", raw, "image/jpeg")}),
    ]
    boxes = [r.json()["faces"][0]["box"] for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert boxes == [boxes[0]] * 4


def test_boxes_are_in_the_upright_pixels_after_exif_rotation(client):
    photo = Image.fromarray(skdata.astronaut())  # 512x512: make it non-square
    photo = photo.crop((0, 0, 512, 400))
    upright = client.post("/faces", content=encode(photo, "JPEG"), headers=JPEG).json()
    # stored rotated by 90 degrees, with the EXIF tag that says how to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    stored = photo.transpose(Image.Transpose.ROTATE_90)
    raw = encode(stored, "JPEG", exif=exif.tobytes())
    body = client.post("/faces", content=raw, headers=JPEG).json()
    assert body["image"] == {"width": 512, "height": 400}
    (face,) = body["faces"]
    (expected,) = upright["faces"]
    for key in ("x", "y", "width", "height"):
        assert face["box"][key] == pytest.approx(expected["box"][key], abs=4)


def test_max_faces_keeps_the_largest(client, group):
    raw, _ = group
    all_faces = client.post("/faces", content=raw, headers=JPEG).json()["faces"]
    two = client.post("/faces?max_faces=2", content=raw, headers=JPEG).json()["faces"]
    assert [f["box"] for f in two] == [f["box"] for f in all_faces[:2]]


def test_min_size_drops_small_faces(client, group):
    raw, _ = group
    faces = client.post("/faces?min_size=80", content=raw, headers=JPEG).json()["faces"]
    assert faces and all(min(f["box"]["width"], f["box"]["height"]) >= 78 for f in faces)
    assert len(faces) < 8


@pytest.mark.parametrize(
    "query", ["max_faces=0", "max_faces=51", "max_faces=abc", "max_faces=1.5", "min_size=-1"]
)
def test_bad_parameters_are_400(client, query):
    raw = encode(Image.fromarray(skdata.astronaut()), "JPEG")
    response = client.post(f"/faces?{query}", content=raw, headers=JPEG)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_parameter" and query.split("=")[0] in body["detail"]


def test_bad_images_get_the_same_errors_as_face(client):
    for route in ("/face", "/faces"):
        assert client.post(route, content=b"not an image", headers=JPEG).json()["error"] == (
            "not_an_image"
        )
        assert client.get(route).status_code == 405
    huge = encode(Image.new("L", (5000, 4000)), "PNG")  # 20 M pixels: over the 16 M limit
    response = client.post("/faces", content=huge, headers={"content-type": "image/png"})
    assert response.status_code == 413 and response.json()["error"] == "image_too_large"


class CountingModel:
    """The real model, counting its session runs (all faces must go in one batch)."""

    def __init__(self, model):
        self.model, self.card, self.batches = model, model.card, []

    def predict(self, images):
        self.batches.append(len(images))
        return self.model.predict(images)


def test_all_faces_are_classified_in_one_batch(settings, model, detector, group):
    counting = CountingModel(model)
    client = TestClient(create_app(settings, counting, detector))
    counting.batches.clear()
    raw, truth = group
    assert len(client.post("/faces", content=raw, headers=JPEG).json()["faces"]) == len(truth)
    assert counting.batches == [len(truth)]


def test_framing_comes_from_the_model_card(model):
    card = json.loads(MODEL.with_suffix(".json").read_text())
    framing = Framing.from_card(model.card.details)
    assert {"margin", "square"} <= set(card["framing"])  # training/measure/framing.py measured it
    assert (framing.margin, framing.square) == (
        card["framing"]["margin"],
        card["framing"]["square"],
    )


def test_framing_squares_and_widens_the_box():
    face = Detection(x=100, y=100, width=60, height=80, score=0.9)
    assert Framing(margin=0.0, square=False).region(face) == (100, 100, 160, 180)
    assert Framing(margin=0.0, square=True).region(face) == (90, 100, 170, 180)
    assert Framing(margin=0.25, square=True, shift_y=0.1).region(face) == (70, 88, 190, 208)


def test_crops_reaching_outside_the_photo_repeat_its_edge():
    image = Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10))
    crop = np.asarray(crop_region(image, (-2, -2, 4, 4)))
    assert crop.shape == (6, 6)
    assert crop[0, 0] == 0 and crop[2, 2] == 0 and crop[5, 5] == 33 and crop[0, 5] == 3


# --- /face: the `face` block (issue 13) --------------------------------------------------


def page_crop(side: int = 96) -> Image.Image:
    """What the page sends: the astronaut's face with a margin, small and grayscale."""
    return (
        Image.fromarray(skdata.astronaut())
        .crop((130, 30, 320, 220))
        .convert("L")
        .resize((side, side))
    )


def test_face_reports_where_the_face_is_in_the_crop(client):
    response = client.post(
        "/face", content=encode(page_crop()), headers={"content-type": "image/png"}
    )
    body = response.json()
    assert set(body["face"]) == {"found", "score", "box", "region"}
    assert body["face"]["found"] is True and body["face"]["score"] > 0.9
    box = body["face"]["box"]
    assert set(box) == {"x", "y", "width", "height"}
    assert 10 <= box["x"] <= 40 and 30 <= box["width"] <= 80
    assert box["x"] + box["width"] <= 96 and box["y"] + box["height"] <= 96
    assert_predictions(body["predictions"])
    assert body["top"] == "Happiness"


def test_face_says_which_region_the_classifier_saw(client, model):
    """`region` is what was classified: cutting it out again gives the same probabilities (what
    the page's "What the model saw" view relies on)."""
    crop = page_crop()
    body = client.post("/face", content=encode(crop), headers={"content-type": "image/png"}).json()
    r = body["face"]["region"]
    assert r["width"] < crop.width and r["height"] < crop.height  # re-framed by the card
    box = body["face"]["box"]
    assert r["x"] <= box["x"] and r["x"] + r["width"] >= box["x"] + box["width"]
    seen = crop_region(crop, (r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]))
    again = model.predict([seen])[0]
    for name, p in zip(CLASSES, again, strict=True):
        assert body["predictions"][name] == pytest.approx(p, abs=1e-5)


def test_a_crop_its_face_fills_says_the_classifier_saw_all_of_it(client, detector):
    photo = Image.fromarray(skdata.camera())
    face = detector.detect(photo)[0]
    crop = crop_region(photo, Framing(margin=-0.1).region(face)).resize((48, 48))  # FER-tight
    body = client.post("/face", content=encode(crop), headers={"content-type": "image/png"}).json()
    assert body["face"]["found"] is True
    assert body["face"]["region"] == {"x": 0, "y": 0, "width": 48, "height": 48}


def test_a_crop_without_a_face_is_classified_whole_and_says_so(client, model):
    crop = Image.fromarray(skdata.coffee()).crop((200, 100, 296, 196))
    body = client.post("/face", content=encode(crop), headers={"content-type": "image/png"}).json()
    entire = {"x": 0, "y": 0, "width": 96, "height": 96}
    assert body["face"] == {"found": False, "score": 0.0, "box": entire, "region": entire}
    whole = model.predict([crop])[0]
    assert body["predictions"][CLASSES[int(np.argmax(whole))]] == pytest.approx(
        whole.max(), abs=1e-5
    )


def test_face_keeps_the_seed_contract(client, face_png):
    body = client.post("/face", data={"imgBase64": data_url(face_png)}).json()
    assert_predictions(body["predictions"])
    assert list(body)[:2] == ["predictions", "top"]


def test_face_detection_runs_on_a_small_copy_of_large_crops(client):
    big = page_crop(480)
    raw = io.BytesIO()
    big.save(raw, "PNG")
    body = client.post(
        "/face", content=raw.getvalue(), headers={"content-type": "image/png"}
    ).json()
    assert body["face"]["found"] is True
    box = body["face"]["box"]  # in the crop's own pixels, not the detector's copy
    assert 50 <= box["x"] <= 200 and 150 <= box["width"] <= 400
