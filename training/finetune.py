"""Fine-tune the shipped model on your own faces (one folder per class); CPU minutes.

    python -m training.finetune --data DIR --out models/mine.onnx [--epochs 4]

Starts from the shipped float16 weights (models/emotion.pth and its card), holds out a
stratified split of DIR, trains a few one-cycle epochs with the same loss, augmentation and
preprocessing as training, then writes a new ONNX file, its weights and card to --out (never
the shipped model unless --overwrite), and prints accuracy and per-class recall on the
held-out faces before and after. Folder names outside the eight classes stop it with an error
naming the folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fastai.vision.all import Learner

from emotion.card import CLASSES, ModelCard
from emotion.model import EmotionModel
from training import data, export, metrics, pipeline
from training.evaluate import file_logits
from training.model import SoftTargetCrossEntropy, soft_accuracy
from training.train import BFloat16Autocast

log = logging.getLogger("training")
SHIPPED = Path("models/emotion.onnx")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="root/<class>/*.jpg")
    p.add_argument("--out", type=Path, required=True, help="new ONNX file (card and .pth beside)")
    p.add_argument("--weights", type=Path, default=SHIPPED.with_suffix(".pth"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--holdout", type=float, default=0.2, help="share of each class held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace a model")
    return p.parse_args(argv)


def stratified_split(
    faces: list[data.Face], labels: list[int], share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices (train, held out): `share` of every class held out, at least one face each."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in sorted(set(labels)):
        members = rng.permutation([i for i, lab in enumerate(labels) if lab == label]).tolist()
        if len(members) < 2:
            raise data.DataError(f"class {CLASSES[label]}: needs at least 2 faces, found 1")
        cut = max(1, round(len(members) * share))
        held += members[:cut]
        train += members[cut:]
    return train, held


def scores(model_path: Path, faces: list[data.Face], labels: np.ndarray) -> dict:
    model = EmotionModel(model_path)
    probs = model.probabilities(file_logits(model, [f.path for f in faces]))
    matrix = metrics.confusion(probs, labels, len(CLASSES))
    recall = metrics.recall_per_class(matrix)
    present = matrix.sum(axis=1) > 0
    return {
        "faces": len(faces),
        "accuracy": round(metrics.accuracy(probs, labels), 4),
        "mean_recall": round(metrics.mean_recall(matrix), 4),
        "recall": {
            c: round(float(r), 4) for c, r, p in zip(CLASSES, recall, present, strict=True) if p
        },
    }


def report(before: dict, after: dict) -> str:
    lines = [f"held-out faces: {after['faces']}", f"{'':12} {'before':>8} {'after':>8}"]
    for key in ("accuracy", "mean_recall"):
        lines.append(f"{key:12} {before[key]:8.1%} {after[key]:8.1%}")
    for name in after["recall"]:
        lines.append(f"{name:12} {before['recall'][name]:8.1%} {after['recall'][name]:8.1%}")
    return "\n".join(lines)


def fine_tune(args: argparse.Namespace, card: ModelCard, train: list[data.Face],
              held: list[data.Face]) -> torch.nn.Module:  # fmt: skip
    adjustment = card.details.get("logit_adjustment") or {}
    prior = data.class_prior(train)
    dls = pipeline.dataloaders(train, held, card, bs=args.bs, seed=args.seed, live_aug=True)
    with tempfile.TemporaryDirectory() as scratch:
        learn = Learner(
            dls,
            export.load_shipped(args.weights),
            loss_func=SoftTargetCrossEntropy(prior, adjustment.get("train_tau", 0.0)),
            metrics=[soft_accuracy],
            path=Path(scratch),
            cbs=[BFloat16Autocast()],
        )
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(args.epochs, args.lr)
    card.details["logit_adjustment"] = {**adjustment, "prior": prior}
    return learn.model.eval()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.out.exists() and not args.overwrite:
        sys.exit(f"finetune: {args.out} exists; choose another --out or pass --overwrite")
    if args.out.suffix != ".onnx":
        sys.exit(f"finetune: --out must name an .onnx file, got {args.out}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        faces, labels = data.read_folders(args.data)
        train_idx, held_idx = stratified_split(faces, labels, args.holdout, args.seed)
        data.check_images(faces)
    except data.DataError as e:
        sys.exit(f"finetune: {e}")
    train = [faces[i] for i in train_idx]
    held = [faces[i] for i in held_idx]
    held_labels = np.array([labels[i] for i in held_idx])
    log.info("faces: %d to train on, %d held out", len(train), len(held))

    card = ModelCard.read(args.weights.with_suffix(".json"))
    before_onnx = args.weights.with_suffix(".onnx")
    before = scores(before_onnx, held, held_labels)

    started = time.time()
    model = fine_tune(args, card, train, held)
    seconds = time.time() - started

    args.out.parent.mkdir(parents=True, exist_ok=True)
    adjustment = card.details["logit_adjustment"]
    weight = adjustment.get("prior_weight", 0.0)
    offset = export.prior_offset(adjustment["prior"], weight) if weight else None
    flip_tta = bool(card.details.get("flip_tta", True))
    export.export_onnx(export.exported_graph(model, flip_tta, offset), card.input_size, args.out)
    details = {k: v for k, v in card.details.items() if k not in ("metrics", "calibration")}
    details["weights"] = export.save_weights(model, args.out.with_suffix(".pth"))
    details["fine_tuned"] = {
        "from": f"{card.label} ({args.weights})",
        "data": str(args.data),
        "command": "python -m training.finetune "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "epochs": args.epochs,
        "lr": args.lr,
        "train_faces": len(train),
        "wall_seconds": round(seconds, 1),
    }
    tuned = dataclasses.replace(card, version=time.strftime("%Y%m%d") + "-ft", details=details)
    tuned.write(args.out.with_suffix(".json"))

    after = scores(args.out, held, held_labels)
    details["fine_tuned"]["held_out"] = {"before": before, "after": after}
    tuned.write(args.out.with_suffix(".json"))
    print(report(before, after))
    print(json.dumps({"out": str(args.out), "before": before, "after": after}))


if __name__ == "__main__":
    main()
