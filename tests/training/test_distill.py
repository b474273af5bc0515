"""training.fit.distill: a training face's target blends its votes with the teacher's answer,
read from the committed members' answers, never from teacher weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion.card import CLASSES
from training.data import readers
from training.fit import distill

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "training" / "measure" / "teacher"
FERPLUS_TRAIN = ROOT.parent / "shared" / "data" / "ferplus" / "FER2013Train"


def member(path: Path, names: list[str], logits: list[list[float]], temperature: float) -> Path:
    np.savez_compressed(
        path,
        train_names=np.array(names),
        train_logits=np.array(logits, dtype=np.float16),
        temperature=np.array(temperature),
    )
    return path


def one_hot(name: str) -> list[float]:
    return [4.0 if c == name else 0.0 for c in CLASSES]


def test_the_teacher_is_the_mean_of_its_members_probabilities_each_at_its_temperature(tmp_path):
    member(tmp_path / "a.npz", ["x.png", "y.png"], [one_hot("Anger"), one_hot("Fear")], 1.0)
    member(tmp_path / "b.npz", ["x.png", "y.png"], [one_hot("Neutral"), one_hot("Fear")], 2.0)
    teacher = distill.teacher_probabilities(distill.member_files([tmp_path]))
    anger, neutral = CLASSES.index("Anger"), CLASSES.index("Neutral")
    sharp = np.exp(4) / (np.exp(4) + 7)  # member a, temperature 1
    soft = np.exp(2) / (np.exp(2) + 7)  # member b, temperature 2: softer
    assert teacher["x.png"][anger] == pytest.approx((sharp + (1 - soft) / 7) / 2, rel=1e-3)
    assert teacher["x.png"][neutral] == pytest.approx(((1 - sharp) / 7 + soft) / 2, rel=1e-3)
    assert teacher["y.png"].sum() == pytest.approx(1.0)


def test_targets_blend_votes_and_teacher_and_a_face_the_teacher_never_saw_stops_it(tmp_path):
    member(tmp_path / "a.npz", ["x.png"], [one_hot("Neutral")], 1.0)
    teacher = distill.teacher_probabilities([tmp_path / "a.npz"])
    votes = tuple(10.0 if c == "Anger" else 0.0 for c in CLASSES)
    (face,) = distill.distilled([readers.Face(Path("faces/x.png"), votes)], teacher, 0.25)
    expected = 0.75 * np.eye(len(CLASSES))[CLASSES.index("Anger")] + 0.25 * teacher["x.png"]
    np.testing.assert_allclose(face.target, expected, rtol=1e-6)
    with pytest.raises(SystemExit, match=r"no answer for 1 faces, e\.g\. z\.png"):
        distill.distilled([readers.Face(Path("faces/z.png"), votes)], teacher, 0.25)


def test_members_must_answer_for_the_same_faces_and_a_folder_must_hold_some(tmp_path):
    member(tmp_path / "a.npz", ["x.png"], [one_hot("Neutral")], 1.0)
    member(tmp_path / "b.npz", ["y.png"], [one_hot("Neutral")], 1.0)
    with pytest.raises(SystemExit, match="not the other members' faces"):
        distill.teacher_probabilities(distill.member_files([tmp_path]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no teacher answers"):
        distill.member_files([tmp_path / "empty"])


def test_the_committed_teacher_answers_for_every_ferplus_training_face():
    """What `--teacher training/measure/teacher` distils from: every FER+ Train face the
    training reads has the ensemble's answer."""
    faces, _ = readers.read_ferplus(FERPLUS_TRAIN)
    teacher = distill.teacher_probabilities(distill.member_files([COMMITTED]))
    blended = distill.distilled(faces, teacher, 0.5)
    assert len(blended) == len(faces) > 28_000
    targets = np.stack([f.target for f in blended])
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    # the teacher agrees with the annotators' plurality on most faces (it learnt them)
    votes = np.stack([f.target for f in faces])
    assert np.mean(targets.argmax(axis=1) == votes.argmax(axis=1)) > 0.9
