"""Does /face's re-crop help? FER+ Valid crops through /face's own steps, the check on and off;
chooses the model card's `framing.as_sent.fill` (cross-fitted).

Two kinds of crop are posted (as bytes, decoded as the app decodes them):

- tight: the 48 px FER+ files as they are (the seed's contract);
- loose: what the live page sends, a square around the face with a 25% margin each side,
  96 px grayscale JPEG (quality 90, as the page's canvas.toDataURL), cut from a photo the
  face was pasted into (training/measure/framing.py's scenes, same seed).

Each crop goes through /face's steps: decode_image, FaceDetector.find_in_crop at
settings.crop_detect_side, then the model either on the crop as sent or on the detector's
face framed as the card says. A crop whose face fills it (the face box's longer side over
the crop's, `Framing.fill`) at least as much as `fill` is classified as sent.

Re-framing a tight crop never helps on average and re-framing them all costs about 2 points
(`always_recrop`), while a loose crop gains most where its face is small. So `fill` is the
value that all but `--tight-share` (10%) of the tight crops reach: only those few, the
smallest faces, are re-framed. (Choosing `fill` to maximise the summed accuracy instead
follows the noise of a flat curve and lands where tight crops lose.) The figures are
cross-fitted: `fill` is chosen on one random half of the faces and measured on the other,
both ways round; `other_halvings` repeats that over more random halvings. The value shipped
is the one chosen on all faces. A few crops per kind are also posted to the app itself
(Starlette TestClient) to check it answers as these steps do.

    python -m training.measure.crop_check --valid ../shared/data/ferplus/FER2013Valid
    python -m training.measure.crop_check --valid DIR --write models/emotion.json   # store `fill`

Data is read in place; nothing is copied.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from emotion.decode import decode_image
from emotion.detect import FaceDetector, default_model_path
from emotion.framing import Framing
from emotion.model import EmotionModel
from emotion.settings import Settings
from training.measure import metrics
from training.measure.framing import BACKGROUNDS, CANVAS, labelled, page_crop, predict, scene

MAX_PIXELS, MIN_SIDE = 16_000_000, 8  # Settings.from_env's defaults: every crop here passes


def tight_crops(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def loose_crops(paths: list[Path], seed: int) -> list[bytes]:
    """The page's crop of each face: 25% margin, 96 px, grayscale JPEG."""
    rng = random.Random(seed)
    backgrounds = [
        Image.fromarray(getattr(skdata, n)()).convert("RGB").resize(CANVAS) for n in BACKGROUNDS
    ]
    out = []
    for path in paths:
        face = decode_image(path.read_bytes(), MAX_PIXELS, MIN_SIDE)
        photo, truth = scene(face, rng, backgrounds)
        raw = io.BytesIO()
        page_crop(photo, truth).save(raw, "JPEG", quality=90)
        out.append(raw.getvalue())
    return out


def through_face(
    crops: list[bytes], model: EmotionModel, detector: FaceDetector, framing: Framing, side: int
) -> dict[str, np.ndarray]:
    """Per crop: the face's fill (nan: no face found), the top class on the crop as sent and
    on the re-framed face (the crop as sent where no face was found)."""
    images = [decode_image(raw, MAX_PIXELS, MIN_SIDE) for raw in crops]
    faces = [detector.find_in_crop(image, side) for image in images]
    pairs = list(zip(images, faces, strict=True))
    fill = np.array([np.nan if f is None else framing.fill(f, im.size) for im, f in pairs])
    refined = [im if f is None else framing.crop(im, f) for im, f in pairs]
    return {"fill": fill, "sent": predict(model, images), "refined": predict(model, refined)}


def answers(route: dict[str, np.ndarray], fill: float) -> np.ndarray:
    """/face's top class with the check on: as sent where the face fills the crop (or none)."""
    keep = np.isnan(route["fill"]) | (route["fill"] >= fill)
    return np.where(keep, route["sent"], route["refined"])


def choose(tight: dict, rows: np.ndarray, share: float) -> float:
    """The fill below which only `share` of the tight crops in `rows` fall: those few, the
    smallest faces, are re-framed; every other tight crop is classified as sent."""
    return round(float(np.nanquantile(tight["fill"][rows], share)), 2)


def halving(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2 :]


def cross_fitted(route: dict, tight: dict, halves: tuple, share: float) -> np.ndarray:
    """/face's answers on `route`'s crops, each half's with the fill chosen on the other half
    (on its tight crops)."""
    out = np.empty_like(route["sent"])
    for fit, held_out in zip(halves, halves[::-1], strict=True):
        out[held_out] = answers(route, choose(tight, fit, share))[held_out]
    return out


def points(pred: np.ndarray, baseline: np.ndarray, labels: np.ndarray) -> float:
    return round(100 * float((pred == labels).mean() - (baseline == labels).mean()), 2)


def figures(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    matrix = metrics.confusion(np.eye(n_classes)[pred], labels, n_classes)
    return {
        "accuracy": round(float((pred == labels).mean()), 4),
        "mean_recall": round(metrics.mean_recall(matrix), 4),
    }


def measure(args: argparse.Namespace) -> dict:
    model = EmotionModel(args.model)
    detector = FaceDetector(args.detector)
    framing = replace(Framing.from_card(model.card.details), as_sent_fill=None)
    paths, labels = labelled(args.valid, args.limit)
    n_classes = len(model.card.classes)
    routes = {}
    for kind, crops in (("tight", tight_crops), ("loose", lambda p: loose_crops(p, args.seed))):
        print(f"{kind}: {len(paths)} crops through /face's steps", file=sys.stderr, flush=True)
        routes[kind] = through_face(crops(paths), model, detector, framing, args.side)

    # Two halves at random; each half's fill is chosen on the other (cross-fitting).
    halves = halving(len(labels), args.seed)
    chosen = [choose(routes["tight"], h, args.tight_share) for h in halves]
    shipped = choose(routes["tight"], np.arange(len(labels)), args.tight_share)
    result = {
        "faces": len(labels),
        "detector_side": args.side,
        "tight_share_recropped": args.tight_share,
        "fill": shipped,
        "fill_per_half": chosen,
    }
    for kind, route in routes.items():
        crossed = cross_fitted(route, routes["tight"], halves, args.tight_share)
        result[kind] = {
            "face_found": round(float(np.mean(~np.isnan(route["fill"]))), 4),
            "check_off": figures(route["sent"], labels, n_classes),
            "check_on": figures(crossed, labels, n_classes),
            "always_recrop": figures(answers(route, np.inf), labels, n_classes),
            "as_sent_share": round(float(np.mean(~(route["fill"] < shipped))), 4),
            "on_minus_off_points": points(crossed, route["sent"], labels),
        }
    # The same over other random halvings: how much the figure depends on the split.
    spread = {kind: [] for kind in routes}
    for seed in range(args.seed + 1, args.seed + 1 + args.halvings):
        for kind, route in routes.items():
            crossed = cross_fitted(
                route, routes["tight"], halving(len(labels), seed), args.tight_share
            )
            spread[kind].append(points(crossed, route["sent"], labels))
    if args.halvings:
        result["other_halvings"] = {
            "count": args.halvings,
            **{
                f"{kind}_on_minus_off_points": {
                    "mean": round(float(np.mean(v)), 2),
                    "worst": min(v),
                    "best": max(v),
                }
                for kind, v in spread.items()
            },
        }
    if args.app_check:
        result["app_check"] = app_check(args, model, detector, paths[: args.app_check])
    return result


def app_check(args: argparse.Namespace, model: EmotionModel, detector, paths) -> dict:
    """The first crops of each kind posted to the app: its top class against these steps'
    (with the card's framing as loaded, i.e. its `fill` before any --write)."""
    from starlette.testclient import TestClient

    from emotion.app import create_app

    settings = replace(Settings.from_env(), model_path=args.model, crop_detect_side=args.side)
    framing = Framing.from_card(model.card.details)
    fill = np.inf if framing.as_sent_fill is None else framing.as_sent_fill
    classes = model.card.classes
    agree = 0
    with contextlib.redirect_stdout(io.StringIO()):  # the app's request log lines and metrics
        client = TestClient(create_app(settings, model, detector))
        for crops, mime in ((tight_crops(paths), "png"), (loose_crops(paths, args.seed), "jpeg")):
            expected = answers(through_face(crops, model, detector, framing, args.side), fill)
            for raw, want in zip(crops, expected, strict=True):
                body = client.post("/face", content=raw, headers={"content-type": f"image/{mime}"})
                agree += body.json()["top"] == classes[want]
    return {"crops": 2 * len(paths), "card_fill": framing.as_sent_fill, "same_top_class": agree}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--valid", type=Path, default=Path("../shared/data/ferplus/FER2013Valid"))
    p.add_argument("--model", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--detector", type=Path, default=default_model_path())
    p.add_argument("--limit", type=int, help="only the first N faces (a quick look)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--side", type=int, default=Settings.crop_detect_side, help="/face's check")
    p.add_argument(
        "--tight-share",
        type=float,
        default=0.1,
        help="the share of tight crops (the smallest faces) still re-framed",
    )
    p.add_argument("--halvings", type=int, default=10, help="more random halvings to report")
    p.add_argument("--app-check", type=int, default=50, help="crops per kind posted to the app")
    p.add_argument("--out", type=Path, help="write the result as JSON here")
    p.add_argument("--write", type=Path, help="store the chosen fill in this model card")
    args = p.parse_args(argv)
    result = measure(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    if args.write:
        write_fill(
            args.write, result, " ".join(["python -m training.measure.crop_check", *sys.argv[1:]])
        )
        print(f"fill written to {args.write}")


def write_fill(card_path: Path, result: dict, command: str) -> None:
    """The chosen fill into the card's `framing` block, as `as_sent` (serving reads it)."""
    card = json.loads(card_path.read_text())
    card["framing"]["as_sent"] = {
        "fill": result["fill"],
        "rule": "/face classifies the crop as sent when no face is found in it or the face "
        "box's longer side is at least fill x the crop's longer side; otherwise the face, "
        "framed as above",
        "measured": {
            "command": command,
            **{k: v for k, v in result.items() if k not in ("fill", "app_check")},
        },
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
