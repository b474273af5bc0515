"""training/measure/crop_check.py: /face's answer rule, the choice of the card's `as_sent.fill`, and a
run on a small FER+-layout split of real faces (scikit-image's, never FER+ files) that writes
the limit into a copy of the card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from emotion.framing import Framing
from training.measure import crop_check, framing

ROOT = Path(__file__).resolve().parents[2]
NAN = np.nan


def test_the_answer_is_the_crop_as_sent_where_the_face_fills_it_or_none_was_found():
    route = {
        "fill": np.array([NAN, 0.95, 0.80, 0.60]),
        "sent": np.array([0, 1, 2, 3]),
        "refined": np.array([4, 5, 6, 7]),
    }
    assert crop_check.answers(route, 0.8).tolist() == [0, 1, 2, 7]
    assert crop_check.answers(route, np.inf).tolist() == [0, 5, 6, 7]  # always re-framed


def test_the_limit_leaves_the_chosen_share_of_tight_crops_below_it():
    fills = np.linspace(0.5, 1.49, 100)
    tight = {"fill": np.concatenate([fills, [NAN]])}  # a crop without a face does not count
    limit = crop_check.choose(tight, np.arange(101), 0.1)
    assert np.mean(fills < limit) == pytest.approx(0.1, abs=0.011)
    assert crop_check.choose(tight, np.arange(50), 0.1) < limit  # only the rows given


def test_each_half_is_answered_with_the_limit_chosen_on_the_other():
    # Half A's tight faces are small, half B's large: each half's limit comes from the other.
    tight = {
        "fill": np.array([0.5, 0.5, 1.0, 1.0]),
        "sent": np.zeros(4, int),
        "refined": np.ones(4, int),
    }
    halves = (np.array([0, 1]), np.array([2, 3]))
    # A is answered with B's limit (1.0): re-framed; B with A's (0.5): as sent.
    assert crop_check.cross_fitted(tight, tight, halves, 0.1).tolist() == [1, 1, 0, 0]


def fer_split(root: Path, faces: int) -> Path:
    """A FER+-layout split of scikit-image's labelled-faces crops, 48 px, each voted Neutral."""
    root.mkdir()
    rows = []
    for i in range(faces):
        pixels = (skdata.lfw_subset()[i] * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((48, 48), Image.BICUBIC).save(root / f"f{i}.png")
        rows.append(f'f{i}.png,"(0, 0, 48, 48)",10,0,0,0,0,0,0,0,0,0')
    (root / "label.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_run_measures_both_kinds_and_writes_the_limit_into_the_card(tmp_path, capsys):
    split = fer_split(tmp_path / "valid", 8)
    card = tmp_path / "emotion.json"
    shutil.copy(ROOT / "models" / "emotion.json", card)
    model = ROOT / "models" / "emotion.onnx"
    args = ["--valid", split, "--model", model, "--halvings", 2, "--app-check", 2, "--write", card]
    crop_check.main([str(a) for a in args])
    result = json.loads(capsys.readouterr().out.split("fill written")[0])
    assert result["faces"] == 8
    for kind in ("tight", "loose"):
        assert result[kind]["face_found"] > 0.5
        assert set(result[kind]["check_on"]) == {"accuracy", "mean_recall"}
    assert result["app_check"]["same_top_class"] == result["app_check"]["crops"] == 4
    written = json.loads(card.read_text())["framing"]
    assert written["as_sent"]["fill"] == result["fill"]
    assert Framing.from_card({"framing": written}).as_sent_fill == result["fill"]
    shipped = json.loads((ROOT / "models" / "emotion.json").read_text())["framing"]
    assert {k: v for k, v in written.items() if k != "as_sent"} == {
        k: v for k, v in shipped.items() if k != "as_sent"
    }  # the rest of the block is left as it was

    # Re-measuring the framing keeps the limit (training/measure/framing.py rewrites the block).
    best = {"margin": 0.0, "square": True, "shift_y": 0.05, "accuracy": 0.8, "on_found": 0.8}
    measured = {"faces": 8, "reference_accuracy": 0.8, "loss_points": 0.0, "detector_found": 1.0}
    framing.write_framing(card, {**measured, "best": best, "face_route": {}}, "cmd")
    again = json.loads(card.read_text())["framing"]
    assert again["margin"] == 0.0 and again["as_sent"] == written["as_sent"]
