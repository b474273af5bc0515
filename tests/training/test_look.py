"""Replay faces in the user's look (training.adapt.look): the tone is the folder's, the blur is
chosen from the folder's sharpness, and fine-tuning shows that share of the replay faces in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

from training.adapt import finetune, look
from training.data import readers

SIDE = 64


def crops(folder: Path, n: int, seed: int, gamma: float = 1.0, blur: float = 0.0) -> list[Path]:
    """48 px grey crops of scikit-image's astronaut, optionally darkened and blurred."""
    photo = Image.fromarray(data.astronaut()).convert("L")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        x, y = rng.integers(0, photo.width - 160, 2)
        face = photo.crop((x, y, x + 160, y + 160)).resize((48, 48), Image.Resampling.BILINEAR)
        face = face.point(lambda v: round(255 * (v / 255) ** gamma))
        if blur:
            face = face.filter(ImageFilter.GaussianBlur(blur))
        paths.append(folder / f"{i}.png")
        face.save(paths[-1])
    return paths


def test_rendered_faces_take_the_folders_tone(tmp_path):
    own = crops(tmp_path / "own", 20, seed=0, gamma=2.2)  # a dim camera
    replay = crops(tmp_path / "fer", 20, seed=1)
    seen = look.measure(own, replay, SIDE)
    folder = np.concatenate([look.grey(p, SIDE).ravel() for p in own])
    plain = np.concatenate([look.grey(p, SIDE).ravel() for p in replay])
    with Image.open(replay[0]) as image:
        assert seen.render(image).size == image.size
    rendered = np.concatenate([np.asarray(seen.render(Image.open(p))).ravel() for p in replay])
    assert abs(plain.mean() - folder.mean()) > 30  # the looks differ ...
    assert abs(rendered.mean() - folder.mean()) < 6  # ... and the rendered faces take the folder's
    assert np.percentile(rendered, 90) == pytest.approx(np.percentile(folder, 90), abs=12)


def test_the_blur_follows_the_folders_sharpness(tmp_path):
    replay = crops(tmp_path / "fer", 30, seed=1)
    sharp = look.measure(crops(tmp_path / "sharp", 20, seed=0), replay, SIDE)
    soft = look.measure(crops(tmp_path / "soft", 20, seed=0, blur=1.5), replay, SIDE)
    assert sharp.blur <= 0.25 < 1.0 <= soft.blur


def test_fine_tuning_shows_that_share_of_the_replay_faces_in_the_look(tmp_path):
    own = crops(tmp_path / "own", 8, seed=0, gamma=2.2)
    replay = crops(tmp_path / "fer", 40, seed=1)
    seen = look.measure(own, replay, SIDE)
    votes = (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    faces = [readers.Face(p, votes) for p in own] + [finetune.ReplayFace(p, votes) for p in replay]
    shown = finetune.in_look(faces, seen, 0.5, seed=0, folder=tmp_path)
    assert shown[:8] == faces[:8]  # the user's own faces as they are
    moved = [f for f in shown[8:] if f.path.parent == tmp_path]
    assert 10 <= len(moved) <= 30 and all(isinstance(f, finetune.ReplayFace) for f in moved)
    assert all(f.votes == votes for f in shown)
    assert finetune.in_look(faces, seen, 0.0, seed=0, folder=tmp_path) == faces
