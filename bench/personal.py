"""How much "Calibrate to my face" helps, measured on simulated people.

    python -m bench.personal [--frames video] [--kinds both|bias] [--sweep] [--model FILE]

FER+ has no identities, so each simulated person is a fixed shift applied to FER+ Valid faces:
a fixed expression-intensity shift toward Neutral (FER+ Train's mean Neutral face blended into
the face; by default, `--intensity posed`, each expression as far toward Neutral as people.POSED
says, ± 0.1 per person: set so that the model reads these people as the issue measured real
posed faces, anger and contempt mostly Neutral; `--intensity per-class`: 10-60% drawn per
person and expression; `uniform`: one 25-50% blend for all their expressions), their camera's
light (gamma, contrast, brightness), blur and a crop offset. (`--resting other` blends in one
other person's Neutral face instead: identity noise that no class shift can undo.) The served model
(models/emotion.onnx, through EmotionModel, as /face classifies a crop sent as it is) reads
every face once; then, for
k = 1, 3, 10 frames per expression, k faces per class calibrate (emotion.recalibration.fit,
the same fit as site/js/personal.js) and the person's other faces are scored uncalibrated and
calibrated, over 20 draws of the calibration faces (each fit cross-validated on its own
frames, as the page does, which also picks between one bias per class and the map). With
--sweep the map's penalty is chosen on half of the people and reported on the other half
(cross-fitted), both ways.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from emotion.card import CLASSES
from emotion.model import EmotionModel
from emotion.recalibration import MAP_MARGIN, MAP_PENALTY, fit
from training.data import readers
from training.data.people import Person
from training.measure import metrics

ROOT = Path(__file__).resolve().parents[1]
FERPLUS = ROOT.parent / "shared" / "data" / "ferplus"
KS = (1, 3, 10)
DRAWS = 20  # draws of the calibration frames per person: its gain is their mean
MAP_PENALTIES = (0.0001, 0.0003, 0.001, 0.003)
NEUTRAL = CLASSES.index("Neutral")


def person_faces(
    faces: list[readers.Face], labels: np.ndarray, per_class: int, rng: random.Random
) -> list[int]:
    """Up to per_class faces of each class (all of the rare ones)."""
    chosen: list[int] = []
    for c in range(len(CLASSES)):
        idx = [int(i) for i in np.flatnonzero(labels == c)]
        chosen += rng.sample(idx, min(per_class, len(idx)))
    return chosen


FRAMES = 20  # --frames video: frames of each of the person's expressions (k = 10 leaves 10)


def video_frame(image: Image.Image, rng: random.Random) -> Image.Image:
    """Another moment of the same expression: a little movement, light and sensor noise."""
    w, h = image.size
    dx, dy, zoom = rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), rng.uniform(0.97, 1.03)
    box = (
        w * (0.5 + dx - zoom / 2), h * (0.5 + dy - zoom / 2),
        w * (0.5 + dx + zoom / 2), h * (0.5 + dy + zoom / 2),
    )  # fmt: skip
    padded = Image.fromarray(np.pad(np.asarray(image), w, mode="edge"))
    moved = padded.resize((w, h), Image.Resampling.BILINEAR, box=tuple(v + w for v in box))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(rng.uniform(-6, 6), 3, (h, w))
    return Image.fromarray(
        np.clip(np.asarray(moved, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    )


def calibration_draw(labels: np.ndarray, k: int, rng: random.Random) -> np.ndarray:
    """k faces per class for calibrating (never all of a class: some stay to be scored)."""
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = list(np.flatnonzero(labels == c))
        mask[rng.sample(idx, min(k, len(idx) - 1))] = True
    return mask


def score(probs: np.ndarray, labels: np.ndarray) -> dict:
    matrix = metrics.confusion(probs, labels, len(CLASSES))
    return {
        "accuracy": metrics.accuracy(probs, labels),
        "mean_recall": metrics.mean_recall(matrix),
        "recall": metrics.recall_per_class(matrix),
    }


def simulate(people: list[tuple[np.ndarray, np.ndarray]], k: int, seed: int, **settings):
    """Per person, mean over draws of (uncalibrated, calibrated) scores on the other faces."""
    out = []
    for p, (probs, labels) in enumerate(people):
        rng = random.Random(seed * 1000 + p)
        before, after = [], []
        for _ in range(DRAWS):
            mask = calibration_draw(labels, k, rng)
            fitted, _ = fit(probs[mask], labels[mask], **settings)
            held = ~mask
            before.append(score(probs[held], labels[held]))
            after.append(score(fitted.apply(probs[held]), labels[held]))
        out.append((_mean(before), _mean(after)))
    return out


def _mean(scores: list[dict]) -> dict:
    return {key: np.mean([s[key] for s in scores], axis=0) for key in scores[0]}


def summary(results) -> dict:
    before = _mean([b for b, _ in results])
    after = _mean([a for _, a in results])
    gains = [a["accuracy"] - b["accuracy"] for b, a in results]
    # Mean recall weighs every expression alike, as the page asks for them; the faces people's
    # scored faces are FER+'s mix (120 Neutral, 16 Contempt), which accuracy follows.
    recall_gains = [a["mean_recall"] - b["mean_recall"] for b, a in results]
    return {
        "uncalibrated": _rounded(before),
        "calibrated": _rounded(after),
        "gain_points": round(100 * float(np.mean(gains)), 2),
        "worst_person_gain_points": round(100 * float(np.min(gains)), 2),
        "mean_recall_gain_points": round(100 * float(np.mean(recall_gains)), 2),
        "worst_person_mean_recall_gain_points": round(100 * float(np.min(recall_gains)), 2),
    }


def _rounded(s: dict) -> dict:
    return {
        "accuracy": round(100 * float(s["accuracy"]), 2),
        "mean_recall": round(100 * float(s["mean_recall"]), 2),
        "recall": {c: round(100 * float(r), 1) for c, r in zip(CLASSES, s["recall"], strict=True)},
    }


def read_people(args: argparse.Namespace) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every simulated person's faces read once by the model (cached: the fits are cheap)."""
    settings = [
        args.people,
        args.per_class,
        args.seed,
        args.resting,
        args.intensity,
        args.frames,
        FRAMES,
    ]
    key = json.dumps([str(args.model), args.model.stat().st_size, *settings])
    name = f"personal-people-{args.resting}-{args.intensity}-{args.frames}.npz"
    cache = ROOT / "bench" / "results" / name
    if cache.is_file():
        stored = np.load(cache)
        if str(stored["key"]) == key:
            return [(stored[f"p{i}"], stored[f"l{i}"]) for i in range(args.people)]
    people = _read_people(args)
    cache.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"p{i}": probs for i, (probs, _) in enumerate(people)}
    arrays |= {f"l{i}": labels for i, (_, labels) in enumerate(people)}
    np.savez_compressed(cache, key=key, **arrays)
    return people


def _read_people(args: argparse.Namespace) -> list[tuple[np.ndarray, np.ndarray]]:
    faces, labels = readers.read_ferplus(args.valid)
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    faces = [faces[i] for i in keep]
    labels = np.array([labels[i] for i in keep])
    train, train_labels = readers.read_ferplus(args.train)
    neutral = [f.path for f, lab in zip(train, train_labels, strict=True) if lab == NEUTRAL]
    mean_neutral = Image.fromarray(
        np.mean([np.asarray(Image.open(p).convert("L"), dtype=np.float32) for p in neutral], axis=0)
        .round()
        .astype(np.uint8)
    )
    model = EmotionModel(args.model)
    rng = random.Random(args.seed)
    people = []
    for p in range(args.people):
        person = Person.draw(rng, neutral, args.resting == "other", args.intensity)
        resting = Image.open(person.resting).convert("L") if person.resting else mean_neutral
        if args.frames == "video":
            # One face per expression, the person's own, seen in FRAMES moments.
            chosen = [i for i in person_faces(faces, labels, 1, rng) for _ in range(FRAMES)]
        else:
            chosen = person_faces(faces, labels, args.per_class, rng)
        images = [
            person.see(Image.open(faces[i].path).convert("L"), labels[i], resting) for i in chosen
        ]
        if args.frames == "video":
            images = [video_frame(image, rng) for image in images]
        probs = np.concatenate(
            [model.predict(images[s : s + 256]) for s in range(0, len(images), 256)]
        )
        people.append((probs, labels[chosen]))
        print(f"person {p + 1}/{args.people}: {len(chosen)} faces", flush=True)
    return people


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--valid", type=Path, default=FERPLUS / "FER2013Valid")
    p.add_argument("--train", type=Path, default=FERPLUS / "FER2013Train")
    p.add_argument("--model", type=Path, default=ROOT / "models" / "emotion.onnx")
    p.add_argument("--people", type=int, default=24)
    p.add_argument("--per-class", type=int, default=120)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--resting",
        choices=("mean", "other"),
        default="mean",
        help="the Neutral face blended in: FER+ Train's mean, or one other person's",
    )
    p.add_argument(
        "--intensity",
        choices=("posed", "per-class", "uniform"),
        default="posed",
        help="how far toward Neutral: posed (each expression its own level, as real posed "
        "faces are read; see people.POSED), per person and expression at random (10-60%%), or one "
        "level per person (25-50%%)",
    )
    p.add_argument(
        "--frames",
        choices=("faces", "video"),
        default="faces",
        help="faces: every face of an expression is another FER face; video: the person has "
        "one face per expression, seen in 20 frames",
    )
    p.add_argument(
        "--kinds",
        choices=("both", "bias"),
        default="both",
        help="both: each fit picks the bias or the map by cross-validation (the page's); "
        "bias: one bias per class only (the page before the map)",
    )
    p.add_argument(
        "--map-margin",
        type=int,
        default=MAP_MARGIN,
        help="held-out frames the map must name right beyond the bias to be taken (1: any win)",
    )
    p.add_argument(
        "--sweep", action="store_true", help="also choose the map penalty on half the people"
    )
    p.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = p.parse_args(argv)
    people = read_people(args)

    half = len(people) // 2
    halves = (people[:half], people[half:])
    allow_map = args.kinds == "both"
    report: dict = {
        "people": len(people),
        "draws": DRAWS,
        "kinds": "class-bias or class-map, chosen per fit" if allow_map else "class-bias only",
        "map_penalty_shipped": MAP_PENALTY,
        "map_margin": args.map_margin,
    }
    if allow_map and args.sweep:
        sweep = {}
        for lam in MAP_PENALTIES:
            sweep[lam] = [
                summary(simulate(h, 3, args.seed, map_penalty=lam, map_margin=args.map_margin))[
                    "gain_points"
                ]
                for h in halves
            ]
            print(f"map penalty {lam}: k=3 gain on each half {sweep[lam]}", flush=True)
        # Chosen on one half, reported on the other (both ways).
        crossed = []
        for pick_on, report_on in ((0, 1), (1, 0)):
            best = max(MAP_PENALTIES, key=lambda lam: sweep[lam][pick_on])
            crossed.append({"map_penalty": best, "gain_points": sweep[best][report_on]})
        report["cross_fitted_k3"] = crossed
    for k in KS:
        report[f"k={k}"] = summary(
            simulate(people, k, args.seed, allow_map=allow_map, map_margin=args.map_margin)
        )
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
