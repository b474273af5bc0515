"""POST /face and GET /health: every accepted way in, every image mode, the response shape."""

from __future__ import annotations

import base64
import json
import logging

import numpy as np
import pytest
from PIL import Image

from emotion.card import CLASSES
from emotion.logs import SERVICE
from face_images import astronaut_face, data_url, encode

FORM = {"content-type": "application/x-www-form-urlencoded"}


def assert_predictions(response) -> dict[str, float]:
    assert response.status_code == 200, response.text
    body = response.json()
    predictions = body["predictions"]
    assert sorted(predictions) == sorted(CLASSES)
    values = list(predictions.values())
    assert values == sorted(values, reverse=True)
    assert sum(values) == pytest.approx(1.0, abs=1e-4)
    assert body["top"] == next(iter(predictions))
    return predictions


def test_health_names_the_model(client, model):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["model"] == model.card.label


def test_the_seed_clients_request(client, face_png):
    # jQuery's $.post('/face', {imgBase64: canvas.toDataURL()}): a urlencoded data URL.
    from urllib.parse import urlencode

    body = urlencode({"imgBase64": data_url(face_png)})
    response = client.post("/face", content=body, headers=FORM)
    assert_predictions(response)
    assert "decode;dur=" in response.headers["server-timing"]
    assert "infer;dur=" in response.headers["server-timing"]


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda s: s, id="bare base64"),
        pytest.param(
            lambda s: "\n".join(s[i : i + 76] for i in range(0, len(s), 76)), id="line breaks"
        ),
        pytest.param(lambda s: s.replace("+", "-").replace("/", "_"), id="url-safe alphabet"),
        pytest.param(lambda s: s.rstrip("="), id="no padding"),
        pytest.param(lambda s: s.replace("+", " "), id="plus sent unencoded"),
    ],
)
def test_base64_variants(client, transform):
    # A size whose base64 has padding and both '+' and '/' in it, so each variant bites.
    raw = encode(astronaut_face().resize((64, 64)), "JPEG", quality=85)
    text = base64.b64encode(raw).decode()
    assert "+" in text and "/" in text and text.endswith("=")
    response = client.post("/face", data={"imgBase64": transform(text)})
    assert_predictions(response)


def test_json_body(client, face_png):
    response = client.post("/face", json={"imgBase64": data_url(face_png)})
    assert_predictions(response)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_raw_image_body(client, fmt):
    raw = encode(astronaut_face().convert("RGB"), fmt.upper())
    response = client.post("/face", content=raw, headers={"content-type": f"image/{fmt}"})
    assert_predictions(response)


def test_multipart_file_and_field(client, face_png):
    files = {"image": ("face.png", face_png, "image/png")}
    assert_predictions(client.post("/face", files=files))
    fields = {"imgBase64": (None, data_url(face_png))}
    assert_predictions(client.post("/face", files=fields))


def _modes() -> dict[str, bytes]:
    face = astronaut_face()
    rgba = face.convert("RGBA")
    rgba.putalpha(200)
    sixteen = Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257)
    frames = [face.convert("P"), face.rotate(90).convert("P")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    return {
        "grayscale": encode(face.convert("L")),
        "rgba": encode(rgba),
        "palette": encode(face.convert("P")),
        "palette with transparency": encode(face.convert("P"), transparency=0),
        "la": encode(face.convert("LA")),
        "1-bit": encode(face.convert("1")),
        "16-bit": encode(sixteen),
        "cmyk jpeg": encode(face.convert("CMYK"), "JPEG"),
        "multi-frame gif": gif,
        "tiny 12x12": encode(face.resize((12, 12))),
        "large 1600x1200": encode(face.resize((1600, 1200)), "JPEG"),
    }


@pytest.mark.parametrize(("mode", "raw"), list(_modes().items()), ids=list(_modes()))
def test_any_size_and_mode(client, mode, raw):
    response = client.post("/face", data={"imgBase64": data_url(raw)})
    assert_predictions(response)


def test_sixteen_bit_reads_like_eight_bit(client):
    """16-bit grayscale is scaled, not clipped to white."""
    face = astronaut_face().convert("L")
    sixteen = Image.fromarray(np.asarray(face, dtype=np.uint16) * 257)
    eight = client.post("/face", data={"imgBase64": data_url(encode(face))}).json()
    wide = client.post("/face", data={"imgBase64": data_url(encode(sixteen))}).json()
    for name in CLASSES:
        assert wide["predictions"][name] == pytest.approx(eight["predictions"][name], abs=1e-3)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_one_log_line_per_request_without_image_data(client, face_png):
    # The Powertools logger prints to stdout and does not propagate: listen to it directly,
    # and format with its own JSON formatter.
    logger = logging.getLogger(SERVICE)
    formatter = logger.handlers[0].formatter
    collect = Collect()
    logger.addHandler(collect)
    try:
        client.post("/face", data={"imgBase64": data_url(face_png)})
        client.post("/face", content=b"garbage", headers={"content-type": "image/png"})
    finally:
        logger.removeHandler(collect)
    lines = [json.loads(formatter.format(r)) for r in collect.records]
    assert all(line["message"] == "request" and line["request_id"] for line in lines)
    assert lines[1]["error"] in ("not_an_image", "truncated_image")
    assert [line["status"] for line in lines] == [200, 400]
    ok = lines[0]
    assert ok["route"] == "/face" and ok["top"] in CLASSES
    assert ok["bytes_in"] > 1000 and ok["ms"] > 0
    logged = json.dumps(lines)
    assert base64.b64encode(face_png[:30]).decode()[:20] not in logged
    assert "garbage" not in logged
