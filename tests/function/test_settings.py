"""The EMOTION_* variables docs/api.md documents: each is read, and each changes what the app
does (an app that hard-coded the defaults fails here); the defaults are docs/api.md's."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from emotion import app as app_module
from emotion.app import create_app
from emotion.detect import PHOTO_SIDE
from emotion.model import EmotionModel
from emotion.settings import Settings
from face_images import astronaut_face, encode

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion.onnx"
VARIABLES = (
    "EMOTION_MAX_BODY_BYTES",
    "EMOTION_MAX_PIXELS",
    "EMOTION_MIN_SIDE",
    "EMOTION_MODEL",
    "EMOTION_THREADS",
    "EMOTION_STATIC_DIR",
    "EMOTION_DETECT_SIDE",
)


def documented_defaults() -> dict[str, str]:
    """`| `EMOTION_X` | default | meaning |` rows of docs/api.md's configuration table."""
    text = (ROOT / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| `(EMOTION_\w+)` \| ([^|]+) \|", text, re.M)
    return {name: default.strip() for name, default in rows}


@pytest.fixture
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_api_page_documents_every_variable_the_code_reads():
    source = (ROOT / "function" / "emotion" / "settings.py").read_text()
    read = set(re.findall(r'"(EMOTION_\w+)"', source))
    assert set(VARIABLES) <= read
    assert read <= set(documented_defaults())  # every variable the code reads has a row


def test_defaults_are_the_api_pages(clean_env):
    documented = documented_defaults()
    settings = Settings.from_env()
    assert settings.max_body_bytes == int(documented["EMOTION_MAX_BODY_BYTES"])
    assert settings.max_pixels == int(documented["EMOTION_MAX_PIXELS"])
    assert settings.min_side == int(documented["EMOTION_MIN_SIDE"])
    assert documented["EMOTION_MODEL"] == "`models/emotion.onnx`"
    assert settings.model_path == MODEL
    assert documented["EMOTION_THREADS"] == "one per core" and settings.threads == 0
    assert documented["EMOTION_STATIC_DIR"].startswith("unset") and settings.static_dir is None
    assert settings.detect_side == int(documented["EMOTION_DETECT_SIDE"]) == PHOTO_SIDE


def test_every_variable_is_read(clean_env, tmp_path):
    values = {
        "EMOTION_MAX_BODY_BYTES": "1234",
        "EMOTION_MAX_PIXELS": "5678",
        "EMOTION_MIN_SIDE": "21",
        "EMOTION_MODEL": str(tmp_path / "other.onnx"),
        "EMOTION_THREADS": "3",
        "EMOTION_STATIC_DIR": str(tmp_path),
        "EMOTION_DETECT_SIDE": "640",
    }
    for name, value in values.items():
        clean_env.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.model_path, settings.static_dir) == (tmp_path / "other.onnx", tmp_path)
    assert (settings.max_body_bytes, settings.max_pixels) == (1234, 5678)
    assert (settings.min_side, settings.threads) == (21, 3)
    assert settings.detect_side == 640


@pytest.fixture
def env_app(clean_env, tmp_path) -> tuple[TestClient, list]:
    """create_app() with no arguments, configured only through the environment."""
    model_dir, site = tmp_path / "model", tmp_path / "site"
    model_dir.mkdir()
    site.mkdir()
    (model_dir / "emotion.onnx").symlink_to(MODEL)
    card = json.loads(MODEL.with_suffix(".json").read_text())
    (model_dir / "emotion.json").write_text(json.dumps({**card, "version": "from-env"}))
    (site / "index.html").write_text("<!doctype html><title>page</title>")
    for name, value in {
        "EMOTION_MAX_BODY_BYTES": "4000",
        "EMOTION_MAX_PIXELS": "2500",
        "EMOTION_MIN_SIDE": "30",
        "EMOTION_MODEL": str(model_dir / "emotion.onnx"),
        "EMOTION_THREADS": "1",
        "EMOTION_STATIC_DIR": str(site),
    }.items():
        clean_env.setenv(name, value)
    built: list[EmotionModel] = []

    class Recorded(EmotionModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    clean_env.setattr(app_module, "EmotionModel", Recorded)
    return TestClient(create_app(), raise_server_exceptions=False), built


def post(client: TestClient, raw: bytes, fmt: str = "jpeg") -> tuple[int, str]:
    response = client.post("/face", content=raw, headers={"content-type": f"image/{fmt}"})
    return response.status_code, response.json().get("error", response.json().get("top"))


def test_the_environment_configures_the_app(env_app):
    client, built = env_app
    face = astronaut_face()
    # EMOTION_MODEL: the card beside that file is the one served.
    assert client.get("/health").json()["model"] == "emotion-resnet34@from-env"
    # EMOTION_THREADS: ONNX Runtime's intra-op pool.
    (model,) = built
    assert model.session.get_session_options().intra_op_num_threads == 1
    # The limits: body 4000 bytes, 2500 pixels, sides of at least 30.
    assert post(client, encode(face.resize((120, 120)), "PNG"), "png") == (413, "body_too_large")
    assert post(client, encode(face.resize((60, 60)), "JPEG")) == (413, "image_too_large")
    assert post(client, encode(face.resize((40, 25)), "JPEG")) == (400, "image_too_small")
    assert post(client, encode(face.resize((40, 40)), "JPEG")) == (200, "Happiness")
    # EMOTION_STATIC_DIR: the page is served beside the API...
    page = client.get("/")
    assert page.status_code == 200 and "<title>page</title>" in page.text


def test_api_paths_keep_their_methods_while_the_page_is_served(env_app):
    client, _ = env_app
    wrong = client.get("/face")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"
    assert wrong.headers["content-type"] == "application/json"
    assert client.post("/health").status_code == 405
    missing = client.get("/nowhere.html")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_threads_default_to_one_per_available_core():
    model = EmotionModel(MODEL)  # threads=0, as EMOTION_THREADS unset gives
    options = model.session.get_session_options()
    assert options.intra_op_num_threads == len(os.sched_getaffinity(0))


def test_one_upload_limit_for_the_page_the_stack_and_the_server(clean_env):
    from infra.config import LIMITS_JS, MAX_BODY_BYTES, page_constant

    page = page_constant(LIMITS_JS, "MAX_UPLOAD_BYTES")
    assert page == MAX_BODY_BYTES == Settings.from_env().max_body_bytes
    # The page sends photos no larger than what /faces detects at.
    assert page_constant(LIMITS_JS, "PHOTO_SEND_SIDE") == PHOTO_SIDE
