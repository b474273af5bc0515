"""Evaluate the exported model exactly as the service runs it, and record the results in
its card.

    python -m training.measure.evaluate --model models/emotion.onnx --valid DIR [--run runs/NAME]

Measures, on the majority-vote faces of DIR (FER+ protocol; or a class-folder layout):
accuracy, mean per-class recall and every class's recall, expected calibration error (15
bins, with the card's temperature and without), a row-normalised confusion-matrix PNG, and
the same on two live-like conditions: the faces upscaled to 144x144 RGB JPEG (how a webcam
crop arrives) and re-framed by a fixed, seeded detector-box jitter (scale +-15%, shift +-10%,
rotation +-10 deg; training.data.augment.jittered_frames).
Also the parity of the ONNX file + serving preprocessing against the fastai pipeline +
PyTorch weights: with --run, that run's final weights; else the float16 weights beside the
model (an export's), or for a weight-only int8 file (the shipped one) the weights rebuilt
from it (training.fit.shipped, cached under runs/shipped/).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.machine import cpu, describe
from emotion.decode import decode_image
from emotion.model import EmotionModel, softmax
from training.data import readers
from training.data.augment import jittered_frames, reframe
from training.fit import shipped
from training.measure import metrics

log = logging.getLogger("training")
BATCH = 256


def labelled_faces(valid_dir: Path) -> tuple[list[readers.Face], np.ndarray]:
    """The faces the majority-vote protocol keeps, and their labels (indices into classes)."""
    faces, labels = readers.read_dataset(valid_dir)
    kept = [(f, lab) for f, lab in zip(faces, labels, strict=True) if lab is not None]
    return [f for f, _ in kept], np.array([lab for _, lab in kept])


def file_logits(
    model: EmotionModel, paths: list[Path], webcam: bool = False, jitter: bool = False
) -> np.ndarray:
    """Through the service's own decoder; webcam=True re-encodes as a 144 px RGB JPEG first;
    jitter=True re-frames face i by the i-th of the fixed seeded frames."""
    frames = jittered_frames(len(paths)) if jitter else None
    out = []
    for start in range(0, len(paths), BATCH):
        images = []
        for i, path in enumerate(paths[start : start + BATCH], start=start):
            raw = path.read_bytes()
            if webcam:
                raw = as_webcam_jpeg(raw)
            image = decode_image(raw, max_pixels=16_000_000, min_side=8)
            images.append(reframe(image, frames[i]) if frames else image)
        out.append(model.logits(images))
    return np.concatenate(out)


def as_webcam_jpeg(raw: bytes, side: int = 144) -> bytes:
    with Image.open(io.BytesIO(raw)) as im:
        big = im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def plot_confusion(matrix: np.ndarray, classes: tuple[str, ...], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    totals = matrix.sum(axis=1)
    fig, ax = plt.subplots(figsize=(8, 6.8), dpi=110)
    shown = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(
        range(len(classes)), [f"{c} (n={n})" for c, n in zip(classes, totals, strict=True)]
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (majority vote); diagonal = recall")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            colour = "white" if rates[i, j] > 0.5 else "black"
            text = f"{rates[i, j]:.0%}" if matrix[i, j] else "."
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(shown, ax=ax, label="share of the true class (row-normalised)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fastai_parity(
    weights: Path, model: EmotionModel, faces: list[readers.Face]
) -> dict[str, float | str]:
    """fastai pipeline + PyTorch weights vs serving preprocessing + ONNX, same files.

    `weights` is a shipped float16 state dict (.pth) or a training run folder."""
    import torch

    from training.fit.export import card_offset, exported_graph, load_shipped, load_weights
    from training.fit.pipeline import inference_batch

    net = load_weights(weights, None) if weights.is_dir() else load_shipped(weights)
    offset = card_offset(model.card.details.get("logit_adjustment") or {})
    net = exported_graph(net, bool(model.card.details.get("flip_tta")), offset)
    probs_fastai = []
    with torch.no_grad():
        for start in range(0, len(faces), BATCH):
            x = inference_batch(faces[start : start + BATCH], model.card)
            probs_fastai.append(torch.softmax(net(x) / model.card.temperature, dim=1).numpy())
    reference = np.concatenate(probs_fastai)
    served = model.probabilities(file_logits(model, [f.path for f in faces]))
    return {
        "top1_agreement": float((reference.argmax(1) == served.argmax(1)).mean()),
        "max_abs_prob_diff": float(np.abs(reference - served).max()),
        "images": len(faces),
        "weights": str(weights),
    }


def evaluate(model_path: Path, valid_dir: Path, run: Path | None, plot: Path | None) -> dict:
    model = EmotionModel(model_path)
    classes = model.card.classes
    faces, truth = labelled_faces(valid_dir)
    paths = [f.path for f in faces]

    started = time.time()
    logits = file_logits(model, paths)
    seconds = time.time() - started
    probs = model.probabilities(logits)
    webcam_probs = model.probabilities(file_logits(model, paths, webcam=True))
    jitter_probs = model.probabilities(file_logits(model, paths, jitter=True))
    matrix = metrics.confusion(probs, truth, len(classes))
    recalls = metrics.recall_per_class(matrix)
    result = {
        "split": str(valid_dir),
        "protocol": "FER+ majority vote: single votes dropped, label = class with more than "
        "half of the rest, unknown/NF/ties left out",
        "faces": len(paths),
        "accuracy": round(metrics.accuracy(probs, truth), 4),
        "mean_recall": round(metrics.mean_recall(matrix), 4),
        "recall": {c: round(float(r), 4) for c, r in zip(classes, recalls, strict=True)},
        "temperature": model.card.temperature,
        "ece_15_bins": round(metrics.expected_calibration_error(probs, truth, 15), 4),
        "ece_15_bins_uncalibrated": round(
            metrics.expected_calibration_error(softmax(logits), truth, 15), 4
        ),
        "mean_confidence": round(float(probs.max(axis=1).mean()), 4),
        "reliability_15_bins": [
            {**r, "confidence": round(r["confidence"], 4), "accuracy": round(r["accuracy"], 4)}
            for r in metrics.reliability(probs, truth, 15)
        ],
        "webcam_144_rgb_jpeg_accuracy": round(metrics.accuracy(webcam_probs, truth), 4),
        "webcam_144_rgb_jpeg_ece_15_bins": round(
            metrics.expected_calibration_error(webcam_probs, truth, 15), 4
        ),
        "webcam_144_rgb_jpeg_mean_recall": round(
            metrics.mean_recall(metrics.confusion(webcam_probs, truth, len(classes))), 4
        ),
        "jittered_crop_accuracy": round(metrics.accuracy(jitter_probs, truth), 4),
        "jittered_crop_mean_recall": round(
            metrics.mean_recall(metrics.confusion(jitter_probs, truth, len(classes))), 4
        ),
        "jittered_crop_recipe": "training.data.augment.jittered_frames(seed=2026): "
        "scale 0.85-1.15, shift +-10% of the side, rotation +-10 deg, edge fill",
        "confusion_matrix": {"rows_true_cols_predicted": classes, "counts": matrix.tolist()},
        "ms_per_face_batched": round(seconds * 1000 / len(paths), 3),
        "cpu": describe(cpu()),
    }
    weights = run or model_path.with_suffix(".pth")
    stored_int8 = model.card.details.get("compact") or model.card.details.get("quantization")
    if not weights.exists() and stored_int8:
        weights = shipped.weights(model_path, valid_dir)
    if weights.exists():
        result["parity_vs_fastai"] = fastai_parity(weights, model, faces)
    if plot:
        title = (
            f"{model.card.label}: accuracy {result['accuracy']:.1%}, "
            f"mean recall {result['mean_recall']:.1%} ({len(paths)} faces)"
        )
        plot_confusion(matrix, classes, plot, title)
    return result


def headline(result: dict) -> str:
    """The figures people should read first, balanced ones beside accuracy."""
    lines = [
        f"accuracy {result['accuracy']:.2%}   mean per-class recall {result['mean_recall']:.2%}"
        f"   ECE {result['ece_15_bins']:.3f}",
        f"webcam 144 px JPEG: {result['webcam_144_rgb_jpeg_accuracy']:.2%}   jittered crops: "
        f"{result['jittered_crop_accuracy']:.2%}",
        "recall: " + ", ".join(f"{c} {r:.1%}" for c, r in result["recall"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--valid", type=Path, required=True)
    p.add_argument("--run", type=Path, help="training run, for the fastai parity check")
    p.add_argument("--plot", type=Path, default=None, help="default: <model>-confusion.png")
    p.add_argument("--no-card", action="store_true", help="print only; leave the card as is")
    args = p.parse_args(argv)

    plot = args.plot or args.model.with_name(args.model.stem + "-confusion.png")
    result = evaluate(args.model, args.valid, args.run, plot)
    print(json.dumps(result, indent=2))
    print(headline(result))
    if not args.no_card:
        card_path = args.model.with_suffix(".json")
        card = json.loads(card_path.read_text())
        previous = card.get("metrics", {}).get("valid", {})
        if "parity_vs_fastai" not in result and "parity_vs_fastai" in previous:
            # Needs the run's PyTorch weights; keep the last measurement, saying so.
            kept = {k: v for k, v in previous["parity_vs_fastai"].items() if k != "note"}
            note = "kept from the last evaluation with --run; not re-measured"
            result["parity_vs_fastai"] = {**kept, "note": note}
        if "float_model_same_run" in previous:  # training.ship.int8_weights's, for the int8 file
            result["float_model_same_run"] = previous["float_model_same_run"]
        card.setdefault("metrics", {})["valid"] = result
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        log.info("metrics written to %s", card_path)


if __name__ == "__main__":
    main()
