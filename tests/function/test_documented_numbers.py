"""The numbers docs/api.md (docs/on-device.md for a model file's size) and openapi.json state
about the API (defaults, limits, sides) hold for the app as it runs: each is read from the
document and checked against a request whose answer changes when the code's number does, on
photos built by tests/face_scenes.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skdata
from starlette.testclient import TestClient

from emotion.app import create_app
from emotion.settings import Settings
from face_images import astronaut_face, encode
from face_scenes import Person, compose

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api.md"
ON_DEVICE = ROOT / "docs" / "on-device.md"
SPEC = json.loads((ROOT / "function" / "emotion" / "openapi.json").read_text())
FACES = SPEC["paths"]["/faces"]["post"]
JPEG = {"content-type": "image/jpeg"}
PNG = {"content-type": "image/png"}


def parameter(name: str) -> dict:
    """openapi.json's schema of a /faces query parameter."""
    return next(p["schema"] for p in FACES["parameters"] if p["name"] == name)


def documented(pattern: str, page: Path = API) -> str:
    """The text of `page` matched by the group in `pattern` (exactly one match)."""
    found = re.findall(pattern, page.read_text())
    assert len(found) == 1, f"{page.relative_to(ROOT)}: {pattern!r} matched {len(found)} times"
    return found[0]


def config_default(name: str) -> str:
    """The default column of `name`'s row in docs/api.md's configuration table."""
    return documented(rf"\n\| `{name}` \| ([^|]+?) \|")


def default_settings() -> Settings:
    """Settings.from_env() with no EMOTION_* variable set: the shipped defaults."""
    with pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k.startswith("EMOTION_")]:
            env.delenv(name)
        return Settings.from_env()


@pytest.fixture(scope="module")
def env_client(model, detector) -> TestClient:
    return TestClient(
        create_app(default_settings(), model, detector), raise_server_exceptions=False
    )


# --- /faces: max_faces ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowd() -> bytes:
    """24 faces, 70 px wide, in a 1024x768 photo: more than the default max_faces."""
    people = [
        Person(("astronaut", "camera")[(row + col) % 2], 70, (90 + col * 170, 100 + row * 180),
               mirror=bool(col % 2))
        for row in range(4)
        for col in range(6)
    ]  # fmt: skip
    photo, _ = compose(people, size=(1024, 768))
    return encode(photo, "JPEG", quality=90)


def test_max_faces_default_is_openapis_and_the_api_pages():
    schema = parameter("max_faces")
    lowest, highest, default = documented(r"`max_faces` \((\d+)-(\d+), default (\d+)")
    assert (schema["minimum"], schema["maximum"], schema["default"]) == (
        int(lowest),
        int(highest),
        int(default),
    )


def test_a_crowd_without_parameters_gives_the_default_number_of_faces(env_client, crowd):
    default, highest = parameter("max_faces")["default"], parameter("max_faces")["maximum"]
    every = env_client.post(f"/faces?max_faces={highest}", content=crowd, headers=JPEG).json()
    assert len(every["faces"]) == 24 > default  # the photo holds more than the default
    faces = env_client.post("/faces", content=crowd, headers=JPEG).json()["faces"]
    assert len(faces) == default
    assert [f["box"] for f in faces] == [f["box"] for f in every["faces"][:default]]


def test_max_faces_range_is_openapis_and_the_settings(env_client, crowd):
    schema = parameter("max_faces")
    settings = default_settings()
    assert schema["maximum"] == settings.max_faces == int(config_default("EMOTION_MAX_FACES"))
    # the response's list is documented to hold no more than that either
    result = SPEC["components"]["schemas"]["FacesResult"]
    assert FACES["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FacesResult"
    }
    assert result["properties"]["faces"]["maxItems"] == schema["maximum"]
    for value, status in [(schema["minimum"], 200), (schema["maximum"], 200),
                          (schema["minimum"] - 1, 400), (schema["maximum"] + 1, 400)]:  # fmt: skip
        response = env_client.post(f"/faces?max_faces={value}", content=crowd, headers=JPEG)
        assert response.status_code == status, value
    assert (
        len(env_client.post("/faces?max_faces=1", content=crowd, headers=JPEG).json()["faces"]) == 1
    )


# --- /faces: min_size ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_face() -> bytes:
    """A 1024x768 photo with a 40 px face and a ~17 px one (the detector's box: ~15 px)."""
    people = [Person("astronaut", 40, (200, 350)), Person("astronaut", 17, (500, 350))]
    photo, _ = compose(people, size=(1024, 768))
    return encode(photo, "PNG")


def test_min_size_default_is_openapis_and_the_api_pages():
    schema = parameter("min_size")
    assert schema["default"] == int(documented(r"`min_size` \(pixels, default (\d+)"))
    assert schema["minimum"] == 0


def test_a_small_face_is_ignored_by_default_and_found_with_min_size_0(env_client, small_face):
    default = parameter("min_size")["default"]
    everything = env_client.post("/faces?min_size=0", content=small_face, headers=PNG).json()
    widths = sorted(f["box"]["width"] for f in everything["faces"])
    assert len(widths) == 2 and widths[0] < default < widths[1]
    faces = env_client.post("/faces", content=small_face, headers=PNG).json()["faces"]
    assert [f["box"]["width"] for f in faces] == [widths[1]]
    # the default is the boundary: a min_size just under the small face keeps it
    under = env_client.post(f"/faces?min_size={widths[0] - 2}", content=small_face, headers=PNG)
    assert len(under.json()["faces"]) == 2


def test_min_size_range_is_openapis(env_client, small_face):
    schema = parameter("min_size")
    for value, status in [(schema["minimum"], 200), (schema["maximum"], 200),
                          (schema["minimum"] - 1, 400), (schema["maximum"] + 1, 400)]:  # fmt: skip
        response = env_client.post(f"/faces?min_size={value}", content=small_face, headers=PNG)
        assert response.status_code == status, value
        if status == 400:
            assert str(schema["maximum"]) in response.json()["detail"]


# --- boxes at the edge of the image --------------------------------------------------------

# The astronaut's face cut by the photo's edge: the detector's box reaches past it (measured:
# about 11 px left and 7 px above in the first, 8 px right and 14 px below in the second).
EDGE_CROPS = {"top left": (200, 100, 512, 512), "bottom right": (0, 0, 250, 150)}


@pytest.mark.parametrize("where", list(EDGE_CROPS))
def test_boxes_stay_inside_the_image_for_a_face_at_its_edge(env_client, detector, where):
    photo = Image.fromarray(skdata.astronaut()).crop(EDGE_CROPS[where])
    (raw_face,) = detector.detect(photo)  # the detector's own box overhangs (not vacuous)
    assert min(raw_face.x, raw_face.y) < -1 or (
        raw_face.x + raw_face.width > photo.width + 1
        or raw_face.y + raw_face.height > photo.height + 1
    )
    width, height = photo.size
    for route in ("/faces", "/face"):
        body = env_client.post(route, content=encode(photo), headers=PNG).json()
        boxes = [f["box"] for f in body["faces"]] if route == "/faces" else [body["face"]["box"]]
        assert len(boxes) == 1 and (route == "/faces" or body["face"]["found"])
        for box in boxes:
            assert box["x"] >= 0 and box["y"] >= 0, (route, box)
            assert box["x"] + box["width"] <= width, (route, box)
            assert box["y"] + box["height"] <= height, (route, box)
            assert box["width"] > 0.5 * raw_face.width  # clipped, not collapsed


# --- sizes and sides -----------------------------------------------------------------------


def test_the_smallest_side_is_the_api_pages(env_client):
    side = int(documented(r"or a side is under (\d+) px"))
    assert side == int(config_default("EMOTION_MIN_SIDE"))
    face = astronaut_face()
    ok = env_client.post("/face", content=encode(face.resize((side, side))), headers=PNG)
    assert ok.status_code == 200
    small = env_client.post("/face", content=encode(face.resize((side - 1, 40))), headers=PNG)
    assert (small.status_code, small.json()["error"]) == (400, "image_too_small")


def test_the_face_check_side_is_the_api_pages():
    side = int(documented(r"face detector run on a\s+(\d+) px copy of the crop"))
    assert (
        side
        == int(config_default("EMOTION_CROP_DETECT_SIDE"))
        == default_settings().crop_detect_side
    )


def test_the_max_faces_setting_caps_the_parameter(model, detector, crowd):
    """EMOTION_MAX_FACES is the parameter's cap: a lower one refuses what openapi allows."""
    settings = Settings(ROOT / "models" / "emotion.onnx", None, 5_000_000, 16_000_000, 8, 0,
                        max_faces=5)  # fmt: skip
    client = TestClient(create_app(settings, model, detector), raise_server_exceptions=False)
    assert client.post("/faces?max_faces=5", content=crowd, headers=JPEG).status_code == 200
    refused = client.post("/faces?max_faces=6", content=crowd, headers=JPEG)
    assert refused.status_code == 400 and "from 1 to 5" in refused.json()["detail"]


# --- limits as openapi.json and docs/api.md state them -------------------------------------


@pytest.mark.parametrize("route", ["/face", "/faces"])
def test_openapis_request_limits_are_the_settings(route):
    body = SPEC["paths"][route]["post"]["requestBody"]["description"]
    limits = re.search(
        r"at most ([\d,]+) bytes and the image at most ([\d,]+) pixels.*each side at least (\d+) px",
        body,
    )
    assert limits, body
    settings = default_settings()
    stated = [int(value.replace(",", "")) for value in limits.groups()]
    assert stated == [settings.max_body_bytes, settings.max_pixels, settings.min_side]
    assert stated == [
        int(config_default(name))
        for name in ("EMOTION_MAX_BODY_BYTES", "EMOTION_MAX_PIXELS", "EMOTION_MIN_SIDE")
    ]


def test_max_faces_description_is_its_schema():
    described = next(p for p in FACES["parameters"] if p["name"] == "max_faces")["description"]
    schema = parameter("max_faces")
    assert f"{schema['minimum']} to {schema['maximum']}" in described


def test_health_says_the_api_pages_input_size(env_client, model):
    stated = int(documented(r'"input_size": (\d+)\}`\s+once the model is loaded'))
    assert env_client.get("/health").json()["input_size"] == stated == model.card.input_size


def test_the_model_file_sizes_are_the_documented_ones():
    """`ls -l models/`: the sizes docs/on-device.md and docs/api.md quote, in MB (10^6 bytes),
    to one decimal."""
    models = ROOT / "models"

    def mb(name: str) -> str:
        return f"{(models / name).stat().st_size / 1e6:.1f}"

    for name, pattern in [
        (
            "emotion-student",
            r"`models/emotion-student\.onnx` \(([\d.]+) MB; ([\d.]+) MB as float32",
        ),
        ("emotion", r"`models/emotion\.onnx`, ([\d.]+) MB; ([\d.]+) MB as float32"),
    ]:
        stored, as_float = documented(pattern, ON_DEVICE)
        # the float32 size is the float export's, which training.ship.int8_weights (or
        # int8_compute, for a file that computes in int8) records
        card = json.loads((models / f"{name}.json").read_text())
        float_mb = (card.get("compact") or card["quantization"])["float_mb"]
        assert (stored, as_float) == (mb(f"{name}.onnx"), f"{float_mb:.1f}"), name
    assert documented(r"MobileNet-0\.25 backbone \(([\d.]+) MB ONNX\)") == mb("face-detector.onnx")
