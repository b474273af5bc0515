"""The teacher's answers, kept small: each ensemble member's logits on every FER+ Train and
Valid face, so a student (or the next ResNet34) is distilled without the teacher's weights.

    python -m training.measure.teacher add --model runs/X/plain.onnx --name wr3 [--out DIR]
    python -m training.measure.teacher report [--out DIR]

(--out: training/measure/teacher/, beside this module, by default.)

`add` runs one exported member (ONNX, through the service's decoder and preprocessing, the
member's own card and temperature-free logits) over FER+ Train and Valid and writes
`<out>/<name>.npz` (float16 logits, ~0.5 MB) with the member's card label and temperature
and the faces' file names, so rows are checked against the split they came from. `report`
scores every member and the ensemble (mean of the members' probabilities, each at its card's
temperature) on Valid: accuracy, mean per-class recall, each class's recall and ECE
(majority-vote protocol). Needs only the server's packages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from emotion.card import CLASSES
from emotion.decode import decode_image
from emotion.model import EmotionModel, softmax
from training.data import readers
from training.measure import metrics

ROOT = Path(__file__).resolve().parents[2]  # the repository
ANSWERS = Path(__file__).resolve().parent / "teacher"  # one .npz a member, committed
FERPLUS = ROOT.parent / "shared" / "data" / "ferplus"
SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid"}
BATCH = 256


def file_logits(model: EmotionModel, paths: list[Path]) -> np.ndarray:
    """Through the service's own decoder and preprocessing, a batch at a time."""
    out = []
    for start in range(0, len(paths), BATCH):
        images = [
            decode_image(path.read_bytes(), max_pixels=16_000_000, min_side=8)
            for path in paths[start : start + BATCH]
        ]
        out.append(model.logits(images))
    return np.concatenate(out)


def member_logits(model_path: Path, ferplus: Path) -> dict[str, np.ndarray]:
    model = EmotionModel(model_path)
    out: dict[str, np.ndarray] = {
        "label": np.array(model.card.label),
        "temperature": np.array(model.card.temperature),
    }
    for split, folder in SPLITS.items():
        faces, _ = readers.read_ferplus(ferplus / folder)
        out[f"{split}_names"] = np.array([f.path.name for f in faces])
        out[f"{split}_logits"] = file_logits(model, [f.path for f in faces]).astype(np.float16)
    return out


def valid_scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    matrix = metrics.confusion(probs, labels, len(CLASSES))
    recall = metrics.recall_per_class(matrix)
    return {
        "accuracy": round(100 * metrics.accuracy(probs, labels), 2),
        "mean_recall": round(100 * metrics.mean_recall(matrix), 2),
        "recall": {c: round(100 * float(r), 1) for c, r in zip(CLASSES, recall, strict=True)},
        "ece": round(metrics.expected_calibration_error(probs, labels), 4),
    }


def report(folder: Path, ferplus: Path) -> dict:
    faces, labels = readers.read_ferplus(ferplus / SPLITS["valid"])
    names = np.array([f.path.name for f in faces])
    kept = np.array([lab is not None for lab in labels])
    hard = np.array([lab for lab in labels if lab is not None])
    members = {}
    probs = []
    for path in sorted(folder.glob("*.npz")):
        stored = np.load(path)
        if not np.array_equal(stored["valid_names"], names):
            raise SystemExit(f"{path}: its Valid rows are not this FER+ Valid's faces")
        # Each member's probabilities as it serves them (its card's temperature), averaged.
        p = softmax(stored["valid_logits"].astype(np.float64) / float(stored["temperature"]))[kept]
        probs.append(p)
        members[path.stem] = {"model": str(stored["label"]), **valid_scores(p, hard)}
    if not probs:
        raise SystemExit(f"{folder}: no members (*.npz)")
    result = {"members": members, "ensemble": valid_scores(np.mean(probs, axis=0), hard)}
    result["ensemble"]["of"] = sorted(members)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=("add", "report"))
    p.add_argument("--model", type=Path, help="add: an exported member (ONNX + card)")
    p.add_argument("--name", help="add: the member's file name")
    p.add_argument("--out", type=Path, default=ANSWERS)
    p.add_argument("--ferplus", type=Path, default=FERPLUS)
    args = p.parse_args(argv)
    if args.command == "add":
        if not (args.model and args.name):
            p.error("add needs --model and --name")
        args.out.mkdir(parents=True, exist_ok=True)
        member = member_logits(args.model, args.ferplus)
        np.savez_compressed(args.out / f"{args.name}.npz", **member)
    print(json.dumps(report(args.out, args.ferplus), indent=1))


if __name__ == "__main__":
    main()
