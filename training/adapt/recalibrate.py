"""Recalibrate a deployment to the people it serves, from a labelled folder, in seconds.

    python -m training.adapt.recalibrate --data DIR --out DIR [--model models/emotion.onnx]
    make recalibrate DATA=<folder per class> OUT=<folder>

DIR holds one folder per class (names normalised as `make finetune` does: angry, happy, ...;
missing classes allowed). Every face is read as POST /face reads a crop (the server's decoder,
face check and framing) by the served model; one bias per class (emotion.recalibration, the
same fit as the page's "Calibrate to my face") is fitted on them. OUT gets emotion.onnx (the
model, unchanged) and emotion.json, whose `recalibration` block the server applies after the
temperature: `EMOTION_MODEL=OUT/emotion.onnx make run`. Held-out figures come from a fit on
70% of each class, scored on the other 30%; the shipped bias is then fitted on all faces.
Needs only the server's packages (no PyTorch).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from emotion.card import CLASSES
from emotion.decode import decode_image
from emotion.detect import FaceDetector
from emotion.errors import ClientError
from emotion.framing import Framing, refine_crop
from emotion.model import EmotionModel
from emotion.recalibration import BOUND, MAP_PENALTY, PENALTY, fit
from emotion.settings import Settings
from training.data import readers
from training.measure import metrics

HELD_OUT = 0.3


class RecalibrationError(Exception):
    """Something in DATA or OUT that stops the run; the message names the file."""


def served_probabilities(paths: list[Path], model_path: Path) -> np.ndarray:
    """What POST /face answers for each file, before any recalibration."""
    settings = Settings.from_env()
    model = EmotionModel(model_path)
    model.recalibration = None  # fit on the model's own answers, never on top of an old fit
    detector = FaceDetector(settings.detector_path)
    framing = Framing.from_card(model.card.details)
    rows = []
    for path in paths:
        try:
            image = decode_image(path.read_bytes(), settings.max_pixels, settings.min_side)
        except (ClientError, OSError) as e:
            raise RecalibrationError(f"{path}: unreadable image ({e})") from None
        found = (
            detector.find_in_crop(image, settings.crop_detect_side)
            if settings.crop_detect_side
            else None
        )
        rows.append(model.predict([refine_crop(image, found, framing)])[0])
    return np.array(rows)


def held_out_split(labels: np.ndarray, seed: int) -> np.ndarray:
    """True for the faces scored, HELD_OUT of each class (a class of one face is only fitted)."""
    rng = random.Random(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = [int(i) for i in np.flatnonzero(labels == c)]
        held[rng.sample(idx, int(len(idx) * HELD_OUT))] = True
    return held


def scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    return metrics.scores(probs, labels, CLASSES)


def recalibration_block(probs: np.ndarray, labels: np.ndarray, data_dir: Path, seed: int) -> dict:
    held = held_out_split(labels, seed)
    block: dict = {"penalty": PENALTY, "map_penalty": MAP_PENALTY, "bound": BOUND}
    if held.any() and (~held).any():
        fitted, _ = fit(probs[~held], labels[~held], per_class=None)  # every face of a folder
        block["held_out"] = {
            "split": f"{HELD_OUT:.0%} of each class, seeded ({seed}), fitted on the rest",
            "kind": fitted.kind,
            "before": scores(probs[held], labels[held]),
            "after": scores(fitted.apply(probs[held]), labels[held]),
        }
    fitted, fallback = fit(probs, labels, per_class=None)
    values = {"bias": _by_class(fitted.bias)}
    if fitted.kind == "class-map":
        values["map"] = {c: _by_class(row) for c, row in zip(CLASSES, fitted.mapping, strict=True)}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
    return {
        "id": f"recal-{digest}",
        "kind": fitted.kind,
        **block,
        **values,
        "counts": {c: int((labels == i).sum()) for i, c in enumerate(CLASSES)},
        "fallback": fallback,
        "data": data_dir.name,
        "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "rule": "probabilities = normalise(p * exp(bias + map · log(max(p, 1e-6)) / 13.8155)), "
        "p = softmax(logits / temperature); no map: zeros",
    }


def _by_class(values: np.ndarray) -> dict:
    return {c: round(float(v), 6) for c, v in zip(CLASSES, values, strict=True)}


def write(model_path: Path, out: Path, block: dict, overwrite: bool) -> Path:
    target = out / "emotion.onnx"
    if target.exists() and not overwrite:
        raise RecalibrationError(f"{target}: already exists (pass --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    if target.resolve() != model_path.resolve():
        shutil.copyfile(model_path, target)
    card = json.loads(model_path.with_suffix(".json").read_text())
    card["recalibration"] = block
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return target


def report(block: dict) -> str:
    lines = [f"recalibration {block['id']}: faces per class {block['counts']}"]
    held = block.get("held_out")
    if held:
        for when in ("before", "after"):
            s = held[when]
            recall = ", ".join(f"{c} {100 * r:.1f}" for c, r in s["recall"].items())
            lines.append(
                f"  held out {when}: accuracy {100 * s['accuracy']:.2f}%, mean recall "
                f"{100 * s['mean_recall']:.2f}% ({s['faces']} faces; {recall})"
            )
    if block["fallback"]:
        lines.append(f"  no adjustment: {block['fallback']}")
    lines.append("  bias: " + ", ".join(f"{c} {b:+.3f}" for c, b in block["bias"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="one folder per class")
    p.add_argument("--out", type=Path, required=True, help="folder for emotion.onnx + .json")
    p.add_argument("--model", type=Path, default=Settings.from_env().model_path)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--overwrite", action="store_true", help="replace OUT/emotion.onnx")
    args = p.parse_args(argv)
    try:
        faces, labels = readers.read_folders(args.data)
        probs = served_probabilities([f.path for f in faces], args.model)
        block = recalibration_block(probs, np.array(labels), args.data, args.seed)
        target = write(args.model, args.out, block, args.overwrite)
    except (readers.DataError, RecalibrationError) as e:
        sys.exit(f"recalibrate: {e}")
    print(report(block))
    print(f"wrote {target} and its card; serve it with EMOTION_MODEL={target} make run")


if __name__ == "__main__":
    main()
