"""How detect -> crop -> classify compares with classifying FER+'s own crops; picks the framing.

Every FER+ Valid face (majority-vote protocol) is upscaled, given surrounding context (its own
edges mirrored and blurred, so there is a head and background around it, not a second face)
and pasted at a random place into a 640x480 scikit-image photo without faces. The server's
detector finds it (the box overlapping the pasted face), the box is framed (margin, squaring,
vertical shift) and the crop classified. The reference is the model on the original 48x48
crops. A face the detector misses counts as wrong in the end-to-end figure.

Two paths are measured: `/faces` (a whole photo) and `/face` (the page's crop of a face,
96 px grayscale with a 25% margin, refined by the detector at a small size).

    python -m training.measure.framing --valid ../shared/data/ferplus/FER2013Valid
    python -m training.measure.framing --valid DIR --write models/emotion.json   # store the best

Data is read in place; nothing is copied.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data as skdata

from emotion.decode import decode_image
from emotion.detect import Detection, FaceDetector, default_model_path
from emotion.framing import Framing, crop_region, refine_crop
from emotion.model import EmotionModel
from training.data import readers

CANVAS = (640, 480)
BACKGROUNDS = ("coffee", "rocket", "chelsea", "brick", "grass", "gravel")
BATCH = 256


def labelled(valid_dir: Path, limit: int | None) -> tuple[list[Path], np.ndarray]:
    faces, labels = readers.read_dataset(valid_dir)
    kept = [(f.path, lab) for f, lab in zip(faces, labels, strict=True) if lab is not None]
    kept = kept[:limit] if limit else kept
    return [p for p, _ in kept], np.array([lab for _, lab in kept])


def with_context(face: Image.Image) -> Image.Image:
    """The 48 px face inside a 96 px square of its own mirrored, blurred surroundings."""
    w, h = face.size
    pixels = np.pad(np.asarray(face), ((h // 2, h // 2), (w // 2, w // 2)), mode="reflect")
    big = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(3))
    big.paste(face, (w // 2, h // 2))
    return big


def scene(face: Image.Image, rng: random.Random, backgrounds: list[Image.Image]):
    """A photo holding the face; returns it and the face's true square (l, t, r, b)."""
    side = rng.randint(80, 200)  # the face's side in the photo
    framed = with_context(face.convert("L")).resize((2 * side, 2 * side), Image.BICUBIC)
    photo = rng.choice(backgrounds).copy()
    x = rng.randint(0, CANVAS[0] - 2 * side)
    y = rng.randint(0, CANVAS[1] - 2 * side)
    photo.paste(framed.convert("RGB"), (x, y))
    return photo, (x + side / 2, y + side / 2, x + 1.5 * side, y + 1.5 * side)


def best_match(found: list[Detection], truth: tuple[float, float, float, float]):
    def iou(d: Detection) -> float:
        ix = max(0.0, min(d.x + d.width, truth[2]) - max(d.x, truth[0]))
        iy = max(0.0, min(d.y + d.height, truth[3]) - max(d.y, truth[1]))
        inter = ix * iy
        union = d.width * d.height + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter
        return inter / union

    scored = [(iou(d), d) for d in found]
    scored = [s for s in scored if s[0] > 0.3]
    return max(scored, key=lambda s: s[0])[1] if scored else None


def page_crop(photo: Image.Image, truth) -> Image.Image:
    """What the page sends: a square around the tracked box with a 25% margin, 96 px, gray."""
    left, top, right, bottom = truth
    m = 0.25 * (right - left)
    return (
        crop_region(photo, (left - m, top - m, right + m, bottom + m)).convert("L").resize((96, 96))
    )


def predict(model: EmotionModel, images: list[Image.Image]) -> np.ndarray:
    out = [model.predict(images[i : i + BATCH]).argmax(1) for i in range(0, len(images), BATCH)]
    return np.concatenate(out) if out else np.zeros(0, int)


def measure(args: argparse.Namespace) -> dict:
    model = EmotionModel(args.model)
    detector = FaceDetector(args.detector)
    paths, labels = labelled(args.valid, args.limit)
    rng = random.Random(args.seed)
    backgrounds = [
        Image.fromarray(getattr(skdata, n)()).convert("RGB").resize(CANVAS) for n in BACKGROUNDS
    ]
    originals = [decode_image(p.read_bytes(), 16_000_000, 8) for p in paths]
    started = time.perf_counter()
    photos, truths, boxes, crops, refined = [], [], [], [], []
    for i, face in enumerate(originals):
        if i % 500 == 0:
            print(f"detecting: {i}/{len(originals)} faces", file=sys.stderr, flush=True)
        photo, truth = scene(face, rng, backgrounds)
        photos.append(photo)
        truths.append(truth)
        boxes.append(best_match(detector.detect(photo, max_side=640), truth))
        crop = page_crop(photo, truth)
        crops.append(crop)
        refined.append(detector.find_in_crop(crop, args.crop_side))
    detect_s = time.perf_counter() - started

    def accuracy(pred: np.ndarray, mask: np.ndarray | None = None) -> float:
        hit = pred == labels
        return round(float(hit[mask].mean() if mask is not None else hit.mean()), 4)

    found = np.array([b is not None for b in boxes])
    reference = accuracy(predict(model, originals))
    truth_crops = predict(model, [crop_region(p, t) for p, t in zip(photos, truths, strict=True)])
    result = {
        "faces": len(paths),
        "reference_accuracy": reference,
        "true_box_accuracy": accuracy(truth_crops),
        "detector_found": round(float(found.mean()), 4),
        "detect_seconds": round(detect_s, 1),
        "grid": [],
    }
    squares = [s == "true" for s in args.squares]
    grid = itertools.product(args.margins, squares, args.shifts)
    for margin, square, shift in grid:
        framing = Framing(margin=margin, square=square, shift_y=shift)
        images = [
            framing.crop(p, b) if b is not None else Image.new("L", (48, 48), 128)
            for p, b in zip(photos, boxes, strict=True)
        ]
        pred = np.where(found, predict(model, images), -1)
        result["grid"].append(
            {**asdict(framing), "accuracy": accuracy(pred), "on_found": accuracy(pred, found)}
        )
    result["grid"].sort(key=lambda r: -r["accuracy"])
    best = result["grid"][0]
    result["best"] = best
    result["loss_points"] = round(100 * (reference - best["accuracy"]), 2)
    # The /face path with the best framing: the page's crop, refined where a face is found.
    framing = Framing(margin=best["margin"], square=best["square"], shift_y=best["shift_y"])
    on_crop = [
        refine_crop(crop, found_in, framing) for crop, found_in in zip(crops, refined, strict=True)
    ]
    result["face_route"] = {
        "crop": "page crop: true square + 25% margin each side, 96 px grayscale",
        "detector_side": args.crop_side,
        "found": round(float(np.mean([r is not None for r in refined])), 4),
        "whole_crop_accuracy": accuracy(predict(model, crops)),
        "refined_accuracy": accuracy(predict(model, on_crop)),
    }
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--valid", type=Path, default=Path("../shared/data/ferplus/FER2013Valid"))
    p.add_argument("--model", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--detector", type=Path, default=default_model_path())
    p.add_argument("--limit", type=int, help="only the first N faces (a quick look)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--crop-side", type=int, default=160, help="detector input side for /face")
    p.add_argument("--margins", type=float, nargs="+", default=[-0.05, 0.0, 0.05, 0.1])
    p.add_argument("--shifts", type=float, nargs="+", default=[0.05, 0.1, 0.15])
    p.add_argument("--squares", nargs="+", default=["true", "false"], choices=["true", "false"])
    p.add_argument("--out", type=Path, help="write the full result as JSON here")
    p.add_argument("--write", type=Path, help="store the best framing in this model card")
    args = p.parse_args(argv)
    result = measure(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "grid"}, indent=2))
    if args.write:
        write_framing(
            args.write, result, " ".join(["python -m training.measure.framing", *sys.argv[1:]])
        )
        print(f"framing written to {args.write}")


def write_framing(card_path: Path, result: dict, command: str) -> None:
    """The best framing into the model card's `framing` block (serving reads it; the export
    step carries the block over when it rewrites the card). Its `as_sent`
    (training/measure/crop_check.py) is kept: re-run that after a new framing, its figures
    depend on it."""
    best = result["best"]
    card = json.loads(card_path.read_text())
    kept = {k: v for k, v in card.get("framing", {}).items() if k == "as_sent"}
    card["framing"] = {
        "margin": best["margin"],
        "square": best["square"],
        "shift_y": best["shift_y"],
        "rule": "box centre moved down by shift_y x box height; square=false keeps the "
        "detector's box (the classifier's preprocessing then centre-crops it to a square, "
        "i.e. to the box width); margin x side added on every side",
        "measured": {
            "command": command,
            "faces": result["faces"],
            "reference_accuracy": result["reference_accuracy"],
            "detect_crop_accuracy": best["accuracy"],
            "loss_points": result["loss_points"],
            "detector_found": result["detector_found"],
            "accuracy_on_found_faces": best["on_found"],
            "face_route": result["face_route"],
        },
        **kept,
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
