"""Both data layouts, the FER+ majority-vote protocol, and malformed data sets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotion.card import CLASSES
from training.data.readers import (
    DataError,
    check_images,
    majority_label,
    normalise_class_name,
    read_dataset,
    read_ferplus,
    read_folders,
)

# label.csv vote order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
# unknown, NF


def face_png(path: Path, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def ferplus_split(tmp_path: Path, rows: list[str], images: list[str]) -> Path:
    for name in images:
        face_png(tmp_path / name)
    (tmp_path / "label.csv").write_text("".join(f"{r}\n" for r in rows))
    return tmp_path


@pytest.mark.parametrize(
    ("votes", "label"),
    [
        ([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], "Neutral"),
        ([0, 6, 4, 0, 0, 0, 0, 0, 0, 0], "Happiness"),
        ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], None),  # tie: no class holds more than half
        ([4, 1, 1, 1, 0, 0, 0, 0, 3, 0], "Neutral"),  # single votes dropped: 4 of 7
        ([0, 0, 0, 0, 0, 0, 0, 0, 8, 2], None),  # unknown wins
        ([1, 0, 0, 0, 0, 0, 0, 0, 0, 9], None),  # not a face
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None),  # all single votes
        ([0, 0, 0, 0, 0, 0, 0, 7, 3, 0], "Contempt"),
        ([0, 0, 0, 0, 3, 4, 2, 0, 1, 0], None),  # 4 of 9 is not a majority
    ],
)
def test_majority_vote_protocol(votes, label):
    result = majority_label(votes)
    assert (CLASSES[result] if result is not None else None) == label


def test_ferplus_votes_become_soft_targets_in_class_order(tmp_path):
    split = ferplus_split(
        tmp_path,
        [
            'a.png,"(0, 0, 48, 48)",0,6,4,0,0,0,0,0,0,0',
            'b.png,"(0, 0, 48, 48)",2,0,0,0,7,0,0,0,1,0',
        ],
        ["a.png", "b.png"],
    )
    faces, labels = read_ferplus(split)
    assert [CLASSES[i] for i in labels] == ["Happiness", "Anger"]
    target = dict(zip(CLASSES, faces[0].target, strict=True))
    assert target["Happiness"] == pytest.approx(0.6) and target["Surprise"] == pytest.approx(0.4)
    # unknown/NF votes are dropped from the distribution: 2 neutral + 7 anger of 9
    assert dict(zip(CLASSES, faces[1].target, strict=True))["Anger"] == pytest.approx(7 / 9)


def test_ferplus_skips_and_counts_faces_without_emotion_votes(tmp_path, caplog):
    split = ferplus_split(
        tmp_path,
        [
            'a.png,"(0, 0, 48, 48)",9,0,0,0,0,0,0,0,1,0',
            'b.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,2,8',
        ],
        ["a.png", "b.png"],
    )
    with caplog.at_level(logging.WARNING):
        faces, _ = read_ferplus(split)
    assert len(faces) == 1
    assert "skipped 1 faces with no emotion vote" in caplog.text


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('a.png,"(0, 0, 48, 48)",1,2,3', "label.csv:2: expected 12 columns, found 5"),
        ('a.png,"(0, 0, 48, 48)",1,x,0,0,0,0,0,0,0,0', "label.csv:2: vote counts must be integers"),
        ('a.png,"(0, 0, 48, 48)",1,-1,0,0,0,0,0,0,0,0', "label.csv:2: negative vote count"),
        (
            'missing.png,"(0, 0, 48, 48)",9,0,0,0,0,0,0,0,1,0',
            "label.csv:2: image 'missing.png' not found",
        ),
    ],
)
def test_ferplus_malformed_rows_name_file_and_line(tmp_path, row, message):
    good = 'a.png,"(0, 0, 48, 48)",9,0,0,0,0,0,0,0,1,0'
    split = ferplus_split(tmp_path, [good, row], ["a.png"])
    with pytest.raises(DataError, match=re.escape(message)):
        read_ferplus(split)


def test_folder_layout_with_alias_names(tmp_path):
    for folder in ["angry", "Happy", "SURPRISED", "neutral"]:
        (tmp_path / folder).mkdir()
        face_png(tmp_path / folder / "1.png")
        face_png(tmp_path / folder / "2.jpg")
    (tmp_path / "Happy" / "notes.txt").write_text("not an image")
    faces, labels = read_dataset(tmp_path)
    assert len(faces) == 8
    assert sorted({CLASSES[i] for i in labels}) == ["Anger", "Happiness", "Neutral", "Surprise"]
    assert all(f.target.sum() == pytest.approx(1) and f.target.max() == 1 for f in faces)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [("angry", "Anger"), ("Sad", "Sadness"), ("fearful", "Fear"), ("disgusted", "Disgust"),
     ("happiness", "Happiness"), ("contempt", "Contempt"), ("0_neutral", "Neutral"), ("joyful", None)],
)  # fmt: skip
def test_class_name_normalisation(folder, expected):
    assert normalise_class_name(folder) == expected


def test_unknown_class_folder_is_an_error_not_a_silent_drop(tmp_path):
    (tmp_path / "happy").mkdir()
    face_png(tmp_path / "happy" / "1.png")
    (tmp_path / "bored").mkdir()
    with pytest.raises(DataError, match="bored"):
        read_folders(tmp_path)


def test_empty_or_missing_data_sets(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        read_folders(tmp_path / "nope")
    with pytest.raises(DataError, match="no images"):
        read_folders(tmp_path)
    with pytest.raises(DataError, match=r"label\.csv: not found"):
        read_ferplus(tmp_path)


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "sad").mkdir()
    face_png(tmp_path / "sad" / "ok.png")
    (tmp_path / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    faces, _ = read_folders(tmp_path)
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        check_images(faces)
