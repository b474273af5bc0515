"""The held-out split of a folder of faces: by person when the folder says who is who.

A split by file lets one person's near-identical frames into both sides, so the held-out
figure flatters the model. A face's person (its group) is, in this order:

- a `person-<id>` or `group-<id>` part of its file name (`-` or `_`, any case):
  `happy/person-07_0003.jpg`, `sad/ann_group_3.png`;
- else the sub-folder it sits in inside its class folder: `happy/ann/0003.jpg` is ann's.

When no face has a group the split is by file, stratified per class. When some have one,
whole groups are held out (a file without one is a group of its own).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from emotion.card import CLASSES
from training.data.readers import DataError, Face

GROUP_IN_NAME = re.compile(r"(?:^|[^a-z0-9])(?:person|group)[-_]([a-z0-9]+)", re.IGNORECASE)


def group_of(path: Path, root: Path) -> str | None:
    """The person a face belongs to, or None when neither its name nor its folder says."""
    if match := GROUP_IN_NAME.search(path.stem):
        return match.group(1).lower()
    parts = path.relative_to(root).parts  # (class folder, [person folder, ...], file)
    return parts[1] if len(parts) > 2 else None


def split(
    faces: list[Face], labels: list[int], root: Path, share: float, seed: int
) -> tuple[list[int], list[int], str]:
    """Indices (train, held out) and how the split was made ("person" or "file")."""
    groups = [group_of(f.path, Path(root)) for f in faces]
    if not any(groups):
        train, held = stratified_split(labels, share, seed)
        return train, held, "file"
    keys = [g if g is not None else f"file:{f.path}" for g, f in zip(groups, faces, strict=True)]
    train, held = group_split(keys, share, seed)
    return train, held, "person"


def stratified_split(labels: list[int], share: float, seed: int) -> tuple[list[int], list[int]]:
    """`share` of every class held out, at least one face each."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in sorted(set(labels)):
        members = rng.permutation([i for i, lab in enumerate(labels) if lab == label]).tolist()
        if len(members) < 2:
            raise DataError(f"class {CLASSES[label]}: needs at least 2 faces, found 1")
        cut = max(1, round(len(members) * share))
        held += members[:cut]
        train += members[cut:]
    return train, held


def group_split(keys: list[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Whole groups held out, in a seeded order, until they hold `share` of the faces."""
    names = sorted(set(keys))
    if len(names) < 2:
        raise DataError(f"only one person ({names[0]}): a split by person needs at least 2")
    order = np.random.default_rng(seed).permutation(names).tolist()
    held_groups: set[str] = set()
    held_faces = 0
    for name in order[:-1]:  # at least one group always trains
        if held_faces >= share * len(keys):
            break
        held_groups.add(name)
        held_faces += keys.count(name)
    train = [i for i, k in enumerate(keys) if k not in held_groups]
    held = [i for i, k in enumerate(keys) if k in held_groups]
    return train, held
