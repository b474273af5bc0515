"""Re-measure shipped models on FER+ Valid; fail when a figure left its card or its floor.

    python -m training.measure.verify --valid DIR models/emotion.onnx models/emotion-student.onnx

For every model: the majority-vote faces of DIR go through the service's own decoder,
preprocessing and ONNX Runtime (training.measure.evaluate's functions), and accuracy, mean per-class
recall, every class's recall and the 15-bin ECE are compared with the card's `metrics.valid`
block. Exit status 1 when any of them differs from the card by more than TOLERANCE, falls
under FLOORS, or is missing from the card. `make verify-model` runs it; CI runs that after
`make test`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion.model import EmotionModel
from training.measure import metrics
from training.measure.evaluate import file_logits, labelled_faces

log = logging.getLogger("training")

# The one table of floors every shipped model must meet on FER+ Valid (fractions; ECE is a
# fraction of faces too). ">=" figures must be at least the bound, "<=" at most.
# Issue 15's targets (accuracy raised from 83.5% to 84% on 2026-12-06, mean recall from 72% to
# 75% on 2026-12-07), which both shipped models meet (the server's ResNet34, int8 compute:
# 85.58%, 78.11%, Contempt 50%; the device's student: see models/emotion-student.json), so
# any regression fails CI.
FLOORS: dict[str, tuple[str, float]] = {
    "accuracy": (">=", 0.84),
    "mean_recall": (">=", 0.75),
    "recall": (">=", 0.35),  # every class's recall (Contempt: 16 faces, 6.25 points each)
    "ece_15_bins": ("<=", 0.05),
}
# How far a re-measured figure may sit from the card's: 0.2 percentage points.
TOLERANCE = 0.002
BINS = 15


@dataclass(frozen=True)
class Check:
    figure: str  # e.g. "accuracy", "recall[Contempt]"
    card: float | None  # None: the card does not state it
    measured: float
    floor: tuple[str, float]
    note: str = ""

    @property
    def problems(self) -> list[str]:
        found = []
        if self.card is None:
            found.append("not in the card")
        elif abs(self.measured - self.card) > TOLERANCE + 1e-9:
            found.append(f"card says {self.card:.4f}, measured {self.measured:.4f}")
        op, bound = self.floor
        if (op == ">=" and self.measured < bound) or (op == "<=" and self.measured > bound):
            found.append("under its floor" if op == ">=" else "over its ceiling")
        return found


def measure(model: EmotionModel, valid_dir: Path) -> dict:
    """The checked figures, recomputed from the images."""
    classes = model.card.classes
    faces, truth = labelled_faces(valid_dir)
    probs = model.probabilities(file_logits(model, [f.path for f in faces]))
    matrix = metrics.confusion(probs, truth, len(classes))
    recalls = metrics.recall_per_class(matrix)
    return {
        "faces": len(faces),
        "accuracy": metrics.accuracy(probs, truth),
        "mean_recall": metrics.mean_recall(matrix),
        "recall": {c: float(r) for c, r in zip(classes, recalls, strict=True)},
        "ece_15_bins": metrics.expected_calibration_error(probs, truth, BINS),
    }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def card_figures(card: dict, classes: tuple[str, ...]) -> tuple[dict, list[str]]:
    """The card's figures, read defensively (a missing one is None: it fails its check), and
    what is wrong with the card as a whole.

    A card without `mean_recall` gets it derived from its per-class recalls (older cards
    state only those)."""
    valid = (card.get("metrics") or {}).get("valid")
    if not isinstance(valid, dict):
        return {"recall": {}}, ["the card has no metrics.valid block"]
    raw_recall = valid.get("recall") if isinstance(valid.get("recall"), dict) else {}
    recall = {c: _number(raw_recall.get(c)) for c in classes}
    figures = {
        "faces": _number(valid.get("faces")),
        "accuracy": _number(valid.get("accuracy")),
        "mean_recall": _number(valid.get("mean_recall")),
        "recall": recall,
        "ece_15_bins": _number(valid.get("ece_15_bins")),
    }
    if figures["mean_recall"] is None and all(r is not None for r in recall.values()):
        figures["mean_recall"] = float(np.mean(list(recall.values())))
        log.info("mean_recall not in the card: derived from its per-class recalls")
    return figures, []


def checks(card: dict, measured: dict) -> list[Check]:
    rows = [
        Check(name, card.get(name), measured[name], FLOORS[name])
        for name in ("accuracy", "mean_recall", "ece_15_bins")
    ]
    rows += [
        Check(f"recall[{c}]", card["recall"].get(c), r, FLOORS["recall"])
        for c, r in measured["recall"].items()
    ]
    return rows


def verify(model_path: Path, valid_dir: Path) -> tuple[list[Check], list[str]]:
    """The checks and the problems found that are not one figure's (missing block, faces)."""
    model = EmotionModel(model_path)
    card_json = json.loads(model_path.with_suffix(".json").read_text())
    card, problems = card_figures(card_json, model.card.classes)
    measured = measure(model, valid_dir)
    if card.get("faces") is not None and card["faces"] != measured["faces"]:
        problems.append(
            f"the card counts {card['faces']:g} faces, {valid_dir} has {measured['faces']}"
        )
    return checks(card, measured), problems


def report(model_path: Path, rows: list[Check], problems: list[str]) -> str:
    def pct(value: float | None, figure: str) -> str:
        if value is None:
            return "-"
        return f"{value:.4f}" if figure.startswith("ece") else f"{value:.2%}"

    lines = [f"{model_path}", f"  {'figure':<20} {'card':>8} {'measured':>9}  {'floor':<9} verdict"]
    for row in rows:
        op, bound = row.floor
        floor = f"{op} {pct(bound, row.figure)}"
        verdict = "ok" if not row.problems else "FAIL: " + "; ".join(row.problems)
        lines.append(
            f"  {row.figure:<20} {pct(row.card, row.figure):>8} "
            f"{pct(row.measured, row.figure):>9}  {floor:<9} {verdict}"
        )
    lines += [f"  FAIL: {p}" for p in problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", type=Path, nargs="+", help="ONNX files, each with its .json card")
    p.add_argument("--valid", type=Path, required=True, help="FER+ FER2013Valid (or folders)")
    args = p.parse_args(argv)

    failed = False
    for model_path in args.models:
        rows, problems = verify(model_path, args.valid)
        print(report(model_path, rows, problems))
        failed |= bool(problems) or any(row.problems for row in rows)
    verdict = "FAILED" if failed else "passed"
    print(f"{verdict}: every figure within {TOLERANCE * 100:g} points of its card and its floor")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
