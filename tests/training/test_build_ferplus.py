"""training.data.build_ferplus on generated stand-ins for fer2013.csv and fer2013new.csv."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import build_ferplus
from training.data.readers import DataError, read_ferplus

# (Usage, FER+ name, votes: neutral happiness surprise sadness anger disgust fear contempt
# unknown NF). Row 3 is a face FER+ dropped (no name, all NF votes).
ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),
    ("Training", "fer0000001.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
    ("Training", "fer0000002.png", [0, 0, 8, 0, 0, 0, 2, 0, 0, 0]),
    ("PublicTest", "fer0000003.png", [1, 0, 0, 9, 0, 0, 0, 0, 0, 0]),
    ("PublicTest", "fer0000004.png", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("PrivateTest", "fer0000005.png", [0, 0, 0, 0, 10, 0, 0, 0, 0, 0]),
]


def write_downloads(tmp_path: Path, rows=ROWS, fer_usages=None) -> tuple[Path, Path, list]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in rows]
    fer, plus = tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv"
    with fer.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (usage, _, _) in enumerate(rows):
            usage = fer_usages[i] if fer_usages else usage
            w.writerow([3, " ".join(str(v) for v in images[i].ravel()), usage])
    with plus.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Usage", "Image name", "neutral", "happiness", "surprise", "sadness",
                    "anger", "disgust", "fear", "contempt", "unknown", "NF"])  # fmt: skip
        for usage, name, votes in rows:
            w.writerow([usage, name, *votes])
    return fer, plus, images


def test_builds_ferplus_layout_from_the_two_downloads(tmp_path):
    fer, plus, images = write_downloads(tmp_path)
    out = tmp_path / "ferplus"
    assert build_ferplus.build(fer, plus, out) == {
        "FER2013Train": 3,
        "FER2013Valid": 2,
        "FER2013Test": 1,
    }
    assert sorted(p.name for p in (out / "FER2013Train").iterdir()) == [
        "fer0000000.png",
        "fer0000001.png",
        "fer0000002.png",
        "label.csv",
    ]
    assert (out / "FER2013Valid" / "label.csv").read_text().splitlines() == [
        'fer0000003.png,"(0, 0, 48, 48)",1,0,0,9,0,0,0,0,0,0',
        'fer0000004.png,"(0, 0, 48, 48)",5,5,0,0,0,0,0,0,0,0',
    ]
    # Row i's pixels become the image named on row i of fer2013new.csv.
    written = np.asarray(Image.open(out / "FER2013Train" / "fer0000002.png"))
    assert written.shape == (48, 48) and np.array_equal(written, images[3])
    # training.data.readers reads it, majority labels included (5-5 tie: left out).
    faces, labels = read_ferplus(out / "FER2013Valid")
    assert [f.path.name for f in faces] == ["fer0000003.png", "fer0000004.png"]
    assert labels[1] is None and labels[0] is not None


def test_check_accepts_the_built_layout_and_refuses_a_broken_one(tmp_path, capsys):
    fer, plus, _ = write_downloads(tmp_path)
    out = tmp_path / "ferplus"
    argv = ["--fer2013", str(fer), "--ferplus", str(plus), "--out", str(out)]
    assert build_ferplus.main([*argv, "--partial"]) == 0
    assert "ok:" in capsys.readouterr().out
    # Without --partial the full downloads' counts are required.
    assert build_ferplus.main(["--check", str(out)]) == 1
    assert "the complete download has 28558" in capsys.readouterr().err

    (out / "FER2013Valid" / "fer0000004.png").unlink()
    assert build_ferplus.main(["--check", str(out), "--partial"]) == 1
    assert "fer0000004.png" in capsys.readouterr().err

    Image.new("L", (64, 64)).save(out / "FER2013Valid" / "fer0000004.png")
    with pytest.raises(DataError, match="64x64, not 48x48"):
        build_ferplus.check(out, full=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows[:-1], "rows but"),
        (lambda rows: [(u, n, v[:9]) for u, n, v in rows], "vote counts"),
        (lambda rows: [("Other", *rows[0][1:]), *rows[1:]], "unknown Usage"),
    ],
    ids=["row counts differ", "short vote row", "unknown usage"],
)
def test_mismatched_downloads_stop_with_the_file_and_line(tmp_path, change, message):
    fer, _, _ = write_downloads(tmp_path)
    (tmp_path / "changed").mkdir()
    _, plus_changed, _ = write_downloads(tmp_path / "changed", change(ROWS))
    with pytest.raises(DataError, match=message):
        build_ferplus.build(fer, plus_changed, tmp_path / "out")


def test_files_not_row_aligned_are_refused(tmp_path):
    usages = [u for u, _, _ in ROWS]
    usages[4] = "Training"  # fer2013.csv says Training where FER+ says PublicTest
    fer, plus, _ = write_downloads(tmp_path, fer_usages=usages)
    with pytest.raises(DataError, match=r"fer2013\.csv:6 is 'Training' .* not row-aligned"):
        build_ferplus.build(fer, plus, tmp_path / "out")


@pytest.mark.parametrize("module", ["training.fit.train", "training.data.build_ferplus"])
def test_the_commands_the_docs_name_answer_help(module):
    """In the venv `make dev` (and `make test`) installs, as docs/training.md says."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "function"), str(root)])}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=root, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:") and "--help" in done.stdout
