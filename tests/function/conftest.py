from __future__ import annotations

import threading
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


class HeldModel:
    """The real model, whose predict waits until the test lets it go: a worker kept busy for
    as long as the test needs, whatever the machine's speed."""

    def __init__(self, model: EmotionModel):
        self.model, self.card = model, model.card
        self.entered, self.gate = threading.Event(), threading.Event()
        self.finished = False

    def predict(self, images):
        self.entered.set()
        self.gate.wait(30)
        self.finished = True
        return self.model.predict(images)
