"""Labelled faces from the two layouts we train on.

Every reader returns `Face` rows: an image path and a vote vector over the model's classes
(FER+: 10 annotators' votes; a folder layout: one vote for the folder's class). Targets are
the normalised votes (soft labels); the FER+ majority-vote protocol decides the hard label
used for accuracy.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion.card import CLASSES

log = logging.getLogger(__name__)

# label.csv vote columns, in file order, mapped to our class names (None: not an emotion).
FERPLUS_COLUMNS: tuple[str | None, ...] = (
    "Neutral",
    "Happiness",
    "Surprise",
    "Sadness",
    "Anger",
    "Disgust",
    "Fear",
    "Contempt",
    None,  # unknown
    None,  # NF, not a face
)

# Folder names people use for the 8 classes (lower-case, letters only).
CLASS_ALIASES: dict[str, str] = {
    "anger": "Anger", "angry": "Anger", "mad": "Anger",
    "disgust": "Disgust", "disgusted": "Disgust",
    "surprise": "Surprise", "surprised": "Surprise",
    "sadness": "Sadness", "sad": "Sadness",
    "happiness": "Happiness", "happy": "Happiness", "joy": "Happiness",
    "neutral": "Neutral", "calm": "Neutral",
    "contempt": "Contempt",
    "fear": "Fear", "fearful": "Fear", "afraid": "Fear", "scared": "Fear",
}  # fmt: skip

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class DataError(ValueError):
    """A data set that cannot be read as it claims to be: names the file and line."""


@dataclass(frozen=True)
class Face:
    path: Path
    votes: tuple[float, ...]  # over CLASSES, FER+ "unknown"/"NF" already removed

    @property
    def target(self) -> np.ndarray:
        v = np.asarray(self.votes, dtype=np.float32)
        return v / v.sum()


def class_prior(faces: list[Face]) -> list[float]:
    """The mean target: how often each class is what the annotators saw (never exactly 0)."""
    mean = np.mean([f.target for f in faces], axis=0) + 1e-4
    return (mean / mean.sum()).round(6).tolist()


def majority_label(raw_votes: list[int]) -> int | None:
    """The FER+ reference protocol on one row of 10 votes (label.csv order).

    Single votes are dropped as noise; the label is the column holding more than half of
    what remains. No such column, or a winner of unknown/NF: the face is left out (None).
    Returns an index into CLASSES.
    """
    votes = [v if v > 1 else 0 for v in raw_votes]
    total = sum(votes)
    if total == 0:
        return None
    top = max(range(len(votes)), key=votes.__getitem__)
    if votes[top] * 2 <= total or FERPLUS_COLUMNS[top] is None:
        return None
    return CLASSES.index(FERPLUS_COLUMNS[top])


def read_ferplus(split_dir: Path) -> tuple[list[Face], list[int | None]]:
    """FER+ `label.csv` (no header): name, "(x, y, w, h)", 10 vote counts.

    Returns the faces that have at least one emotion vote, and for each its majority label
    (None where the protocol leaves it out). Rows whose votes are all unknown/NF are skipped
    and counted; anything malformed or missing raises DataError naming file and line.
    """
    split_dir = Path(split_dir)
    label_csv = split_dir / "label.csv"
    if not label_csv.is_file():
        raise DataError(f"{label_csv}: not found (expected FER+ layout: <split>/label.csv)")
    order = [CLASSES.index(c) if c else None for c in FERPLUS_COLUMNS]
    faces: list[Face] = []
    labels: list[int | None] = []
    no_emotion = 0
    with label_csv.open(newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            where = f"{label_csv}:{line_no}"
            if len(row) != 12:
                raise DataError(f"{where}: expected 12 columns, found {len(row)}")
            try:
                raw = [int(v) for v in row[2:]]
            except ValueError as e:
                raise DataError(f"{where}: vote counts must be integers ({e})") from None
            if any(v < 0 for v in raw):
                raise DataError(f"{where}: negative vote count")
            path = split_dir / row[0]
            if not path.is_file():
                raise DataError(f"{where}: image {row[0]!r} not found in {split_dir}")
            votes = [0.0] * len(CLASSES)
            for column, count in enumerate(raw):
                if order[column] is not None:
                    votes[order[column]] += count
            if sum(votes) == 0:
                no_emotion += 1
                continue
            faces.append(Face(path, tuple(votes)))
            labels.append(majority_label(raw))
    if no_emotion:
        log.warning("%s: skipped %d faces with no emotion vote", label_csv, no_emotion)
    if not faces:
        raise DataError(f"{label_csv}: no usable rows")
    return faces, labels


def normalise_class_name(folder: str) -> str | None:
    key = re.sub(r"[^a-z]", "", folder.lower())
    return CLASS_ALIASES.get(key)


def read_folders(root: Path) -> tuple[list[Face], list[int | None]]:
    """`root/<class>/*.jpg`: one folder per class, names normalised (angry -> Anger).

    A folder that is not one of the 8 classes raises DataError (a typo would otherwise
    silently drop a class); files that are not images are skipped and counted.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    faces: list[Face] = []
    labels: list[int | None] = []
    ignored = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = normalise_class_name(folder.name)
        if name is None:
            raise DataError(
                f"{folder}: folder name is not one of the classes {', '.join(CLASSES)} "
                "(or a known alias such as angry, happy, sad, surprised)"
            )
        index = CLASSES.index(name)
        votes = tuple(1.0 if i == index else 0.0 for i in range(len(CLASSES)))
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                faces.append(Face(path, votes))
                labels.append(index)
            elif path.is_file():
                ignored += 1
    if ignored:
        log.warning("%s: skipped %d files that are not images", root, ignored)
    if not faces:
        raise DataError(f"{root}: no images found in class folders")
    return faces, labels


def read_dataset(root: Path) -> tuple[list[Face], list[int | None]]:
    """Either layout, told apart by the presence of label.csv."""
    root = Path(root)
    return read_ferplus(root) if (root / "label.csv").is_file() else read_folders(root)


def check_images(faces: list[Face]) -> None:
    """Open every image once, so a corrupt file fails now with its name, not mid-epoch."""
    from PIL import Image

    for face in faces:
        try:
            with Image.open(face.path) as im:
                im.load()
        except Exception as e:  # Pillow raises many types for a bad file
            raise DataError(f"{face.path}: unreadable image ({e})") from None
