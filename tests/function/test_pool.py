"""CPU work runs in a bounded pool of worker threads, never on the event loop: /health
answers while every worker is busy, a full queue answers 503 with Retry-After at once, and
serving never writes a file (a multipart part is kept in memory, never spooled to disk)."""

from __future__ import annotations

import sys
import threading
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from emotion.app import create_app
from face_images import astronaut_face, encode

from .conftest import HeldModel

PNG = {"content-type": "image/png"}


@pytest.fixture
def held(settings, model, detector):
    """An app with one worker and no room to wait, its worker held."""
    held = HeldModel(model)
    app = create_app(replace(settings, workers=1, queue=0), held, detector)
    face = encode(astronaut_face().resize((96, 96)))
    with TestClient(app) as client:
        answers = []
        first = threading.Thread(
            target=lambda: answers.append(client.post("/face", content=face, headers=PNG))
        )
        first.start()
        assert held.entered.wait(30), "the first request never reached the model"
        try:
            yield client, held, face
        finally:
            held.gate.set()
            first.join(30)
        assert answers[0].status_code == 200, answers[0].text


def test_health_answers_while_every_worker_is_busy(held):
    client, model, _ = held
    response = client.get("/health")
    assert response.status_code == 200
    assert not model.finished  # answered while the worker was still held


def test_a_full_queue_answers_503_with_retry_after(held):
    client, model, face = held
    for path in ("/face", "/faces"):
        response = client.post(path, content=face, headers=PNG)
        assert response.status_code == 503
        assert response.json()["error"] == "busy" and response.json()["detail"]
        assert response.headers["retry-after"] == "1"
    assert not model.finished


def test_serving_writes_no_file(client):
    """Every file opened for writing while the app serves a large multipart upload (over
    Starlette's 1 MB spooling threshold), seen through Python's audit hooks."""
    written: list[str] = []
    watching = threading.Event()

    def hook(event: str, args: tuple) -> None:
        if not watching.is_set():
            return
        if event == "open" and (
            (isinstance(args[1], str) and any(m in args[1] for m in "wax+"))
            or (isinstance(args[2], int) and args[2] & 0o3)  # O_WRONLY / O_RDWR
        ):
            written.append(str(args[0]))
        elif event.startswith("tempfile."):
            written.append(event)

    sys.addaudithook(hook)  # hooks cannot be removed: it only records while `watching`
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    big = encode(Image.fromarray(noise), "PNG")  # 1.5 MB: PNG cannot compress noise
    assert len(big) > 1024 * 1024
    watching.set()
    try:
        response = client.post("/faces", files={"image": ("photo.png", big, "image/png")})
    finally:
        watching.clear()
    assert response.status_code == 200, response.text
    assert written == []
