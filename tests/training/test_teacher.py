"""training.measure.teacher: members' logits kept per FER+ row, the ensemble scored on Valid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from face_images import astronaut_face
from training.measure import teacher

MODEL = teacher.ROOT / "models" / "emotion.onnx"


@pytest.fixture(scope="module")
def ferplus(tmp_path_factory):
    """A FER+-shaped pair of splits made of the astronaut's face: votes say Happiness,
    Neutral or (one row) unknown only."""
    root = tmp_path_factory.mktemp("ferplus")
    face = astronaut_face().convert("L").resize((48, 48))
    rows = {
        "FER2013Train": ["0,9,0,0,0,0,0,0,1,0", "8,2,0,0,0,0,0,0,0,0"],
        "FER2013Valid": ["0,10,0,0,0,0,0,0,0,0", "1,9,0,0,0,0,0,0,0,0", "0,0,0,0,0,0,0,0,5,5"],
    }
    for split, votes in rows.items():
        (root / split).mkdir()
        lines = []
        for i, v in enumerate(votes):
            name = f"fer{i:07d}.png"
            (face.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i else face).save(
                root / split / name
            )
            lines.append(f'{name},"(0, 0, 48, 48)",{v}')
        (root / split / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_members_are_stored_small_and_scored_with_the_ensemble(ferplus, tmp_path):
    out = tmp_path / "teacher"
    teacher.main(
        ["add", "--model", str(MODEL), "--name", "a", "--out", str(out), "--ferplus", str(ferplus)]
    )
    teacher.main(
        ["add", "--model", str(MODEL), "--name", "b", "--out", str(out), "--ferplus", str(ferplus)]
    )
    stored = np.load(out / "a.npz")
    assert stored["train_logits"].dtype == np.float16 and stored["train_logits"].shape == (2, 8)
    assert stored["valid_logits"].shape == (2, 8)  # the all-unknown row has no emotion vote
    assert list(stored["valid_names"]) == ["fer0000000.png", "fer0000001.png"]
    result = teacher.report(out, ferplus)
    assert set(result["members"]) == {"a", "b"}
    # Two identical members: the ensemble scores exactly as each does.
    assert result["ensemble"]["accuracy"] == result["members"]["a"]["accuracy"] == 100.0
    assert result["ensemble"]["of"] == ["a", "b"]


def test_a_member_of_other_faces_is_refused(ferplus, tmp_path):
    out = tmp_path / "teacher"
    teacher.main(
        ["add", "--model", str(MODEL), "--name", "a", "--out", str(out), "--ferplus", str(ferplus)]
    )
    stored = dict(np.load(out / "a.npz"))
    stored["valid_names"] = stored["valid_names"][::-1]
    np.savez_compressed(out / "a.npz", **stored)
    with pytest.raises(SystemExit, match="not this FER\\+ Valid"):
        teacher.report(out, ferplus)
