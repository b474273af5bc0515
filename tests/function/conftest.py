from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from emotion.app import create_app
from emotion.detect import FaceDetector
from emotion.model import EmotionModel
from emotion.settings import Settings
from face_images import astronaut_face, encode

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion.onnx"
DETECTOR = ROOT / "models" / "face-detector.onnx"


@pytest.fixture(scope="session")
def model() -> EmotionModel:
    return EmotionModel(MODEL)


@pytest.fixture(scope="session")
def detector() -> FaceDetector:
    return FaceDetector(DETECTOR)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        model_path=MODEL,
        static_dir=None,
        max_body_bytes=5_000_000,
        max_pixels=16_000_000,
        min_side=8,
        threads=0,
    )


@pytest.fixture(scope="session")
def client(settings, model, detector) -> TestClient:
    return TestClient(create_app(settings, model, detector), raise_server_exceptions=False)


@pytest.fixture(scope="session")
def face_png() -> bytes:
    return encode(astronaut_face().resize((96, 96)))
