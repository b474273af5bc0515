"""Fine-tune the shipped model on your own faces (one folder per class) without forgetting.

    python -m training.adapt.finetune --data DIR --out models/mine.onnx [--epochs 6]

Starts from the shipped model's weights (rebuilt from models/emotion.onnx once and cached:
training.fit.shipped) or --weights (float16, with its card and ONNX file beside), holds out a split
of DIR (by person when the file names or sub-folders say who is who: training.data.holdout), and
trains a few one-cycle epochs with the same loss, augmentation and preprocessing as training.
What keeps the model reading everything else:

- replay: every batch is half your faces, half FER+ training faces with their votes
  (--replay, default ../shared/data/ferplus/FER2013Train when it is there);
- distillation (without replay): your faces' targets are mixed with the original model's own
  predictions on them (--distill);
- a class your folder lacks is left out of the loss on your faces (they neither push it
  down nor up: your own neutral face stays Neutral; --teach-absent for the old way with
  replay); the exported logit adjustment keeps FER+'s class prior (your folder's would
  silence every class it lacks);
- with replay, a share of the replay faces shown in your folder's look (--replay-look: its
  tone and sharpness, training.adapt.look), so that faces from your camera are not only the
  classes your folder has (a folder without Neutral would teach that they are never Neutral);
- with replay, layer1 to layer3 train (your camera and light are learnt there) while the stem,
  layer4 and the head, where the classes are told apart, stay as loaded (--frozen); the new
  weights are averaged with the start's (--average 0.5) and every BatchNorm's statistics
  measured again on your faces and as many FER+ faces (--refit-bn); distillation is off;
- with replay, every class given back its share of answers on FER+ faces (--shift-classes
  all): one logit shift per class, fitted on FER+ training faces, so that your folder's class
  mix (a class it lacks, a rare one it is rich in) does not move how often each is named;
- without replay, the stem, layer1 and layer2 stay frozen; the learning rate is low;
- with replay, routing (--route, training.adapt.route): the written file holds the start's
  file as it is, the fine-tuned network and a gate fitted on your faces against FER+ faces;
  a face like yours is read by the fine-tuned network, any other by the original, so
  everyone else's faces keep their reading (for twice the time and the file; --no-route
  writes the fine-tuned network alone).

Writes a new ONNX file (computing in int8 when the start does, as the shipped model does:
--int8), its weights and card to --out (never the shipped model unless --overwrite), and
prints accuracy and per-class recall before and after on the held-out faces of DIR and on
FER+ Valid (--check), with a plain warning for every class that lost more than 5 points there
and every class DIR lacks. Folder names outside the eight classes stop it
with an error naming the folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from fastai.vision.all import Learner
from PIL import Image

from emotion.card import CLASSES, ModelCard
from emotion.model import EmotionModel
from training.adapt import look, route
from training.data import holdout, readers
from training.fit import export, pipeline, shipped
from training.fit.train import PARTS, BFloat16Autocast, Freeze, seed_everything
from training.measure import metrics
from training.measure.evaluate import file_logits, labelled_faces
from training.ship import int8_compute

log = logging.getLogger("training")
SHIPPED = Path("models/emotion.onnx")
FERPLUS = Path("../shared/data/ferplus")
WARN_POINTS = 5.0  # a class that loses more than this on the check set is named
ABSENT = -20.0  # logit offset that takes a class out of the user's faces' softmax
REPLAY_BALANCE = 0.0  # measured: 0.5 and 1 kept no class better on the stand-in (README)
# FER+ training faces on which every class is given back the share of answers the original
# model gave it (class_share_shift); the fine-tune draws few of them.
SHIFT_SAMPLE = 2000
INT8_FACES = 512  # faces whose activations set the int8 ranges (as the shipped model's)
GATE_FACES = 1000  # FER+ faces the route's gate is fitted on, and as many more it is tried on
# a gate that sends fewer of the held-out faces to the fine-tuned network, or more FER+ faces,
# does not tell your camera from everyone else's: said in plain words
ROUTE_WARN = {"your_held_out": 0.8, "fer_not_fitted_on": 0.1}


def ferplus_split(name: str) -> Path | None:
    split = FERPLUS / name
    return split if (split / "label.csv").is_file() else None


def optional_path(value: str) -> Path | None:
    return None if value.lower() == "none" else Path(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="root/<class>/*.jpg")
    p.add_argument("--out", type=Path, required=True, help="new ONNX file (card and .pth beside)")
    p.add_argument(
        "--weights", type=Path, help="default: the shipped model's (training.fit.shipped)"
    )
    # 6 since 2026-12-07: with the averaging, 4 -> 6 epochs kept FER+ Valid better (-1.2 against
    # -2.1 points) and gained more on the stand-in (+7.8 against +4.3; training/README.md)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--holdout", type=float, default=0.2, help="share of DIR held out")
    p.add_argument(
        "--replay",
        type=optional_path,
        default=ferplus_split("FER2013Train"),
        help="FER+ training faces mixed into every batch ('none': distillation only)",
    )
    p.add_argument("--replay-share", type=float, default=0.5, help="share of each batch")
    p.add_argument(
        "--replay-look",
        type=float,
        help="share of the replay faces shown in your folder's look (its tone and sharpness,\n"
        "training.adapt.look): every class, Neutral too, in your camera's look; default 0.5\n"
        "with replay",
    )
    p.add_argument(
        "--shift-look",
        type=float,
        default=0.0,
        help="share of the FER+ faces the class shift is fitted on shown in your folder's look\n"
        "(0: as FER+ has them, whose shares of answers the shift gives back)",
    )
    p.add_argument(
        "--shift-classes",
        choices=("absent", "all"),
        default="all",
        help="classes whose share of answers on FER+ faces is given back after fine-tuning\n"
        "(with replay): every class, or only those your folder lacks",
    )
    p.add_argument(
        "--replay-exclude",
        type=Path,
        help="a text file of image file names (one a line) kept out of the replay faces:\n"
        "faces your folder or your test set was made from",
    )
    p.add_argument(
        "--replay-balance",
        type=float,
        default=REPLAY_BALANCE,
        help="draw replay faces with weight prior^-x: 0 as FER+ has them, 1 every class alike\n"
        "(the rare classes, which a small folder's faces pull most, then keep their FER+ faces)",
    )
    p.add_argument(
        "--teach-absent",
        action="store_true",
        help="with replay, let your faces teach that they are none of the classes your folder\n"
        "lacks (the default before 2026-12-07: your folder's classes gain on faces like yours,\n"
        "and your own faces of a lacking class are named less; training/README.md)",
    )
    p.add_argument(
        "--distill",
        type=float,
        help="weight of the original model's predictions in your faces' targets (0: off);\n"
        "default 0 with replay, 0.5 without",
    )
    p.add_argument(
        "--frozen",
        nargs="*",
        choices=PARTS,
        help="parts of the ResNet body kept exactly as loaded; default the stem with replay,\n"
        "the stem, layer1 and layer2 without",
    )
    p.add_argument(
        "--average",
        type=float,
        help="share of the fine-tuned weights in the new model, the rest the start's\n"
        "(weight-space averaging; 1: the fine-tuned weights alone); default 0.5 with replay,\n"
        "1 without",
    )
    p.add_argument(
        "--refit-bn",
        action=argparse.BooleanOptionalAction,
        help="measure every BatchNorm's statistics again, on your training faces and as many\n"
        "replay faces (after --average, whose mixed statistics match neither network);\n"
        "default on with replay (it needs replay faces)",
    )
    p.add_argument(
        "--route",
        action=argparse.BooleanOptionalAction,
        help="write both networks and a gate that reads faces like your folder's with the\n"
        "fine-tuned one and every other face with the original (training.adapt.route); twice\n"
        "the time and the file; default on with replay (the gate is fitted against its faces)",
    )
    p.add_argument(
        "--check",
        type=optional_path,
        default=ferplus_split("FER2013Valid"),
        help="faces that measure what the model still reads, before and after ('none': skip)",
    )
    p.add_argument("--check-limit", type=int, default=0, help="a seeded subset of --check")
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        help="write the new model computing in int8 (static QDQ); default: as the start does\n"
        "(the shipped model does: 22 MB and 2.7 ms a face against 87 MB and 7.4 ms)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace a model")
    return with_defaults(p.parse_args(argv))


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The settings left unset, by whether FER+ faces are replayed (training/README.md,
    "Fine-tuning on your own faces", has the stand-in's figures for each). With replay: the
    early layers train too (the user's camera and light are learnt there), and what that costs
    the old reading is given back by averaging with the start and refitting BatchNorm on both
    kinds of faces. Without replay nothing would give it back: the early layers stay frozen
    and the original model's answers enter the targets."""
    replayed = args.replay is not None
    defaults = {
        "distill": 0.0 if replayed else 0.5,
        "frozen": ["stem", "layer4", "head"] if replayed else ["stem", "layer1", "layer2"],
        "average": 0.5 if replayed else 1.0,
        "refit_bn": replayed,
        "replay_look": 0.5 if replayed else 0.0,
        "route": replayed,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.refit_bn and not replayed:
        sys.exit("finetune: --refit-bn needs replay faces (--replay)")
    if args.route and not replayed:
        sys.exit("finetune: --route needs replay faces (--replay): the gate is fitted against them")
    return args


def scores(model_path: Path, faces: list[readers.Face], labels: np.ndarray) -> dict:
    model = EmotionModel(model_path)
    probs = model.probabilities(file_logits(model, [f.path for f in faces]))
    counts = metrics.confusion(probs, labels, len(CLASSES)).sum(axis=1)
    return {
        **metrics.scores(probs, labels, CLASSES),
        "per_class": {c: int(n) for c, n in zip(CLASSES, counts, strict=True) if n},
    }


def table(title: str, before: dict, after: dict) -> str:
    lines = [f"{title}: {after['faces']} faces", f"{'':12} {'before':>8} {'after':>8} {'faces':>6}"]
    for key in ("accuracy", "mean_recall"):
        lines.append(f"{key:12} {before[key]:8.1%} {after[key]:8.1%}")
    for name in after["recall"]:
        lines.append(
            f"{name:12} {before['recall'][name]:8.1%} {after['recall'][name]:8.1%}"
            f" {after['per_class'][name]:6d}"
        )
    return "\n".join(lines)


def lost_more_than_allowed(was: float, now: float) -> bool:
    """More than WARN_POINTS lost, recalls as fractions: 3 faces of 60 is exactly 5 points,
    which float subtraction can make 5.000000000000004."""
    return round((was - now) * 100, 6) > WARN_POINTS


def warnings(counts: dict[str, int], check: dict | None) -> list[str]:
    """Plain sentences for what the figures on the user's own faces cannot show."""
    out = []
    absent = [c for c in CLASSES if not counts.get(c)]
    if absent:
        out.append(
            f"Your folder has no training faces of {', '.join(absent)}: the new model was not "
            "taught how you show them, and keeps the original model's reading only as far as "
            "the check set's figures below say."
        )
    if check:
        for name, was in check["before"]["recall"].items():
            now = check["after"]["recall"][name]
            if lost_more_than_allowed(was, now):
                faces = check["after"]["per_class"][name]
                out.append(
                    f"{name} got worse on {check['data']}: recall {was:.1%} -> {now:.1%} "
                    f"({(now - was) * 100:+.1f} points, {faces} faces). The new model reads "
                    f"{name} faces of other people less well than the one it started from."
                )
    return out


def per_class(faces: list[readers.Face]) -> dict[str, int]:
    labels = [int(np.argmax(f.votes)) for f in faces]
    return {c: labels.count(i) for i, c in enumerate(CLASSES) if i in labels}


def teacher_probabilities(
    model: torch.nn.Module, faces: list[readers.Face], card: ModelCard, offset: torch.Tensor
) -> np.ndarray:
    """The original model's training-space probabilities on each face (face and mirror)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(faces), 256):
            x = pipeline.inference_batch(faces[start : start + 256], card)
            logits = (model(x) + model(torch.flip(x, dims=[3]))) / 2
            out.append(torch.softmax(logits + offset, dim=1).numpy())
    return np.concatenate(out)


def distilled(faces: list[readers.Face], teacher: np.ndarray, weight: float) -> list[readers.Face]:
    """Targets (1 - weight) * your label + weight * what the original model read."""
    mixed = (1 - weight) * np.stack([f.target for f in faces]) + weight * teacher
    return [readers.Face(f.path, tuple(t.tolist())) for f, t in zip(faces, mixed, strict=True)]


def replay_weights(replay: list[readers.Face], prior: list[float], balance: float) -> np.ndarray:
    """Each replay face's chance of being drawn: its target's mean of prior^-balance."""
    if not replay:
        return np.zeros(0)
    per_class = np.asarray(prior, dtype=np.float64) ** -balance
    weights = np.stack([f.target for f in replay]) @ per_class
    return weights / weights.sum()


def drawn_prior(replay: list[readers.Face], weights: np.ndarray) -> list[float]:
    """The class prior of the replay faces as they are drawn (never exactly 0, as
    readers.class_prior: a class the replay folder lacks must not make the loss infinite)."""
    drawn = weights @ np.stack([f.target for f in replay]) + 1e-4
    return (drawn / drawn.sum()).tolist()


def drawn_from(replay: list[readers.Face], n: int, rng: np.random.Generator) -> list[readers.Face]:
    """`n` replay faces without replacement, in `rng`'s order (the first n of a permutation)."""
    return [replay[i] for i in rng.permutation(len(replay))[:n]]


def batches(
    train: list[readers.Face],
    replay: list[readers.Face],
    args: argparse.Namespace,
    weights: np.ndarray | None = None,
) -> list[readers.Face]:
    """The whole run's faces in order: every batch holds bs - k of yours and k replay faces
    (k = bs * replay_share, drawn with `weights`, uniform by default), fresh each epoch."""
    rng = np.random.default_rng(args.seed)
    k = round(args.bs * args.replay_share) if replay else 0
    own = args.bs - k
    n_batches = math.ceil(len(train) / own)
    order: list[readers.Face] = []
    for _ in range(args.epochs):
        mine = rng.permutation(len(train))
        mine = np.resize(mine, n_batches * own)  # the last batch is topped up from the start
        need = n_batches * k  # a small replay folder is drawn from again
        theirs = rng.choice(len(replay), need, replace=need > len(replay), p=weights) if k else []
        for b in range(n_batches):
            order += [train[i] for i in mine[b * own : (b + 1) * own]]
            order += [replay[j] for j in theirs[b * k : (b + 1) * k]]
    return order


class ReplayFace(readers.Face):
    """A FER+ training face mixed into a batch (told apart from the user's by its type)."""


class SourcedTarget(pipeline.FaceTarget):
    """The vote vector plus a 9th column: 1 for the user's own faces, 0 for replayed ones."""

    def __call__(self, i: int) -> torch.Tensor:
        face = self.faces[i]
        own = 0.0 if isinstance(face, ReplayFace) else 1.0
        return torch.cat([torch.from_numpy(face.target), torch.tensor([own])])


class SourcedLoss(torch.nn.Module):
    """The soft cross-entropy on logits + tau * log(FER+ prior), as in training, except that
    on the user's own faces the `absent` classes are taken out of the softmax: those faces
    then neither push their logits down nor up. Replayed FER+ faces see every class, with
    the prior they were drawn with (`replay_prior`, when it is not FER+'s): the network's own
    logits then learn what they learnt in training, however the replay is weighted."""

    def __init__(
        self,
        prior: list[float],
        tau: float,
        absent: list[bool],
        replay_prior: list[float] | None = None,
    ):
        super().__init__()
        log_prior = torch.log(torch.as_tensor(prior, dtype=torch.float32))
        adjusted = tau * log_prior
        drawn = torch.log(torch.as_tensor(replay_prior or prior, dtype=torch.float32))
        self.register_buffer("replay", adjusted + drawn - log_prior)
        self.register_buffer("own", adjusted + ABSENT * torch.as_tensor(absent).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        votes, own = target[:, :-1], target[:, -1:]
        offset = own * self.own + (1 - own) * self.replay
        return -(votes * torch.log_softmax(logits + offset, dim=1)).sum(dim=1).mean()


def left_out_of_your_loss(train: list[readers.Face], taught: bool) -> list[bool]:
    """Per class, whether it is out of the loss on the user's faces: a class the folder lacks,
    unless `taught` (--teach-absent, with replay). The user's faces say nothing about it;
    taught, a folder without Neutral teaches that faces from its camera are never Neutral,
    the user's own neutral face included (the stand-in's, seed 0: 81% -> 65% taught, 84% left
    out; training/README.md, "Your own Neutral kept")."""
    return [not taught and not any(f.votes[i] for f in train) for i in range(len(CLASSES))]


def fine_tune(
    args: argparse.Namespace,
    card: ModelCard,
    train: list[readers.Face],
    held: list[readers.Face],
    replay: list[readers.Face],
    seen: look.Look | None = None,
) -> torch.nn.Module:
    adjustment = card.details.get("logit_adjustment") or {}
    # FER+'s prior, as the model was trained: the user's folder would give the classes it
    # lacks a prior near 0, and the exported offset would then never let them win.
    prior = adjustment.get("prior") or readers.class_prior(replay or train)
    absent = left_out_of_your_loss(train, taught=bool(args.teach_absent and replay))
    weights = replay_weights(replay, prior, args.replay_balance)
    replay_prior = drawn_prior(replay, weights) if replay else None
    loss = SourcedLoss(prior, adjustment.get("train_tau", 0.0), absent, replay_prior)
    model = export.load_shipped(args.weights)
    if args.distill:  # the original's reading, in the space the loss sees the user's faces in
        teacher = teacher_probabilities(model, train, card, loss.own)
        train = distilled(train, teacher, args.distill)
    order = batches(train, [ReplayFace(f.path, f.votes) for f in replay], args, weights)
    with tempfile.TemporaryDirectory() as scratch:
        if seen is not None:
            order = in_look(order, seen, args.replay_look, args.seed, Path(scratch))
        dls = pipeline.dataloaders(
            order, held, card, bs=args.bs, seed=args.seed, live_aug=True, shuffle=False,
            target=SourcedTarget,
        )  # fmt: skip
        learn = Learner(
            dls,
            model,
            loss_func=loss,
            path=Path(scratch),
            cbs=[BFloat16Autocast(), *([Freeze(args.frozen)] if args.frozen else [])],
        )
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(1, args.lr)  # one pass over `order`: all epochs, one cycle
    card.details["logit_adjustment"] = {**adjustment, "prior": prior}
    return learn.model.eval()


def in_look(
    faces: list[readers.Face], seen: look.Look, share: float, seed: int, folder: Path
) -> list[readers.Face]:
    """`faces` with a random `share` of the replay faces among them re-rendered in the look of
    the user's faces (training.adapt.look), as PNG files in `folder`; the rest as they are."""
    rng = np.random.default_rng(seed + 1)
    out = list(faces)
    for i, face in enumerate(faces):
        if isinstance(face, ReplayFace) and rng.random() < share:
            path = folder / f"look-{i}.png"
            with Image.open(face.path) as image:
                seen.render(image).save(path)
            out[i] = ReplayFace(path, face.votes)
    return out


def averaged(model: torch.nn.Module, start: dict[str, torch.Tensor], share: float) -> None:
    """In place: `share` of the fine-tuned weights plus the rest of the start's (`start`, a
    state dict of the same network); integer buffers keep the fine-tuned values."""
    tuned = model.state_dict()
    model.load_state_dict({
        name: share * value + (1 - share) * start[name].to(value.dtype)
        if value.is_floating_point() else value
        for name, value in tuned.items()
    })  # fmt: skip


def refit_batchnorm(
    model: torch.nn.Module, faces: list[readers.Face], card: ModelCard, bs: int = 64
) -> None:
    """In place: every BatchNorm's running mean and variance measured again, as the plain
    average over `faces` (no augmentation); weights untouched."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch, not a decaying one
    model.train()
    with torch.no_grad():
        for start in range(0, len(faces), bs):
            model(pipeline.inference_batch(faces[start : start + bs], card))
    model.eval()


def class_share_shift(
    new_logits: np.ndarray, old_logits: np.ndarray, classes: list[int], rounds: int = 4
) -> np.ndarray:
    """Per class in `classes`, the logit shift that makes the new model name it as often as the
    original did on the same faces; the other classes keep 0. A folder's class mix is not
    FER+'s (a class it lacks, 8% Contempt where FER+ has 0.6%), and fine-tuning on it moves
    how often each class wins on everyone's faces: a class the folder lacks is named less
    (its faces taught that a dim sad face is Sadness, not Neutral), one it is rich in more.
    This gives each class back its share of answers and changes nothing else."""
    shift = np.zeros(new_logits.shape[1])
    wanted = {c: float(np.mean(old_logits.argmax(1) == c)) for c in classes}
    for _ in range(rounds):  # each class's share moves with the others' shifts: a few sweeps
        for c in classes:
            low, high = -10.0, 10.0
            for _ in range(30):  # the share grows with the shift: bisect
                shift[c] = (low + high) / 2
                share = np.mean((new_logits + shift).argmax(1) == c)
                low, high = (shift[c], high) if share < wanted[c] else (low, shift[c])
            shift[c] = (low + high) / 2
    return shift


def give_back_shares(
    args: argparse.Namespace,
    model: torch.nn.Module,
    tuned: ModelCard,
    replay: list[readers.Face],
    classes: list[int],
    before: Path,
    seen: look.Look | None = None,
) -> dict:
    """Shift the logits of `classes` (class_share_shift, on SHIFT_SAMPLE replay faces, a share
    args.shift_look of them in the folder's look) and export args.out again with the shift in
    its offset; the card's logit_adjustment records it."""
    sampled = drawn_from(replay, SHIFT_SAMPLE, np.random.default_rng(args.seed))
    drawn = [ReplayFace(f.path, f.votes) for f in sampled]
    with tempfile.TemporaryDirectory() as scratch:
        sample_in_look = seen is not None and args.shift_look > 0
        if sample_in_look:
            drawn = in_look(drawn, seen, args.shift_look, args.seed, Path(scratch))
        sample = [face.path for face in drawn]
        new = file_logits(EmotionModel(args.out), sample)
        old = file_logits(EmotionModel(before), sample)
    shift = class_share_shift(new, old, classes)
    adjustment = tuned.details["logit_adjustment"]
    adjustment["class_shift"] = [round(float(v), 4) for v in shift]
    graph = export.exported_graph(model, bool(tuned.details.get("flip_tta", True)),
                                  export.card_offset(adjustment))  # fmt: skip
    export.export_onnx(graph, tuned.input_size, args.out)

    def share(logits: np.ndarray, c: int) -> float:
        return round(float(np.mean(logits.argmax(1) == c)), 4)

    return {
        "method": "each class's logit shifted so that the new model names it as often as the "
        "original did on the same FER+ training faces (class_shift in logit_adjustment)"
        + (f", {args.shift_look:.0%} of them in your folder's look" if sample_in_look else ""),
        "faces": len(sample),
        "shift": {CLASSES[c]: round(float(shift[c]), 4) for c in classes},
        "share_of_answers": {
            CLASSES[c]: {
                "original": share(old, c),
                "fine_tuned": share(new, c),
                "shifted": share(new + shift, c),
            }
            for c in classes
        },
    }


def routed(
    args: argparse.Namespace,
    tuned: ModelCard,
    train: list[readers.Face],
    held: list[readers.Face],
    replay: list[readers.Face],
    original: Path,
) -> dict:
    """args.out (the fine-tuned network's file) written again as a routed model
    (training.adapt.route): `original`, the start's file as it is, the fine-tuned file, and a
    gate fitted on `train` against GATE_FACES replay faces; how it routes is measured on
    `held` and as many other replay faces."""
    drawn = drawn_from(replay, 2 * GATE_FACES, np.random.default_rng(args.seed))
    fitted_on, tried_on = drawn[:GATE_FACES], drawn[GATE_FACES:]
    gate = route.fit_gate(export.load_shipped(args.weights), train, fitted_on, tuned)
    shares = {"your_held_out": route.routed_share(gate, held, tuned),
              "fer_not_fitted_on": route.routed_share(gate, tried_on, tuned)}  # fmt: skip
    fine_tuned_mb = args.out.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as scratch:
        gate_file = Path(scratch) / "gate.onnx"
        export.export_onnx(gate, tuned.input_size, gate_file)
        model = route.combined(*(onnx.load(str(f)) for f in (original, args.out, gate_file)))
    written = args.out.with_name(f"{args.out.stem}.{os.getpid()}.partial")  # then renamed:
    onnx.save(model, str(written))  # a half-written file never takes args.out's name
    written.replace(args.out)
    return {
        "method": "logits = original + g * (fine_tuned - original); g a logistic regression on "
        "the original's stem and layer1 (per channel mean and spread), fitted on your training "
        "faces against FER+ training faces (training.adapt.route)",
        "original": str(original),
        "gate_faces": {"yours": len(train), "fer": len(fitted_on)},
        "sent_to_fine_tuned": {k: None if v is None else round(v, 4) for k, v in shares.items()},
        "faces_tried": {"your_held_out": len(held), "fer_not_fitted_on": len(tried_on)},
        "fine_tuned_alone_mb": round(fine_tuned_mb, 1),
        "routed_mb": round(args.out.stat().st_size / 1e6, 1),
    }


def route_warnings(routing: dict | None) -> list[str]:
    if not routing:
        return []
    sent = routing["sent_to_fine_tuned"]
    notes = []
    if sent["your_held_out"] is not None and sent["your_held_out"] < ROUTE_WARN["your_held_out"]:
        notes.append(f"the route sends only {sent['your_held_out']:.0%} of your held-out faces to "
                     "the fine-tuned network: it barely tells your camera from FER+'s faces, so "
                     "faces like yours are often read as before (--no-route: the fine-tuned "
                     "network alone)")  # fmt: skip
    if sent["fer_not_fitted_on"] > ROUTE_WARN["fer_not_fitted_on"]:
        share = sent["fer_not_fitted_on"]
        notes.append(f"the route sends {share:.0%} of other FER+ faces to the fine-tuned "
                     "network: other people's faces may be read differently now")  # fmt: skip
    return notes


def in_int8(path: Path, card: ModelCard, faces: list[readers.Face], seed: int) -> dict:
    """`path`'s float export replaced by the same network computing in int8, as the shipped
    model does (training.ship.int8_compute's static QDQ, activation ranges from INT8_FACES of
    `faces`): about a quarter of the file and a third of the time a face."""
    rng = np.random.default_rng(seed)
    ranges_from = [faces[i].path for i in rng.permutation(len(faces))[:INT8_FACES]]
    with tempfile.TemporaryDirectory() as scratch:
        exported = Path(scratch) / path.name
        path.replace(exported)
        int8_compute.quantize(exported, path, ranges_from, card, reduce_range=True)
        float_mb = exported.stat().st_size / 1e6
    return {
        "method": "ONNX Runtime static QDQ, per-channel int8 weights (reduce_range), uint8 "
        f"activations, ranges from {len(ranges_from)} faces, logits float "
        "(training.ship.int8_compute, float_logits)",
        "float_mb": round(float_mb, 1),
        "int8_mb": round(path.stat().st_size / 1e6, 1),
    }


def read_replay(path: Path | None, exclude: Path | None = None) -> list[readers.Face]:
    if path is None:
        return []
    faces, _ = readers.read_dataset(path)
    if exclude is not None:
        names = set(exclude.read_text().split())
        faces = [f for f in faces if f.path.name not in names]
    return faces


def check_set(args: argparse.Namespace) -> tuple[list[readers.Face], np.ndarray]:
    faces, labels = labelled_faces(args.check)
    if args.check_limit and args.check_limit < len(faces):
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(faces))[: args.check_limit])
        faces, labels = [faces[i] for i in keep], labels[keep]
    return faces, labels


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.out.exists() and not args.overwrite:
        sys.exit(f"finetune: {args.out} exists; choose another --out or pass --overwrite")
    if args.out.suffix != ".onnx":
        sys.exit(f"finetune: --out must name an .onnx file, got {args.out}")
    torch.set_num_threads(args.threads)
    try:
        faces, labels = readers.read_folders(args.data)
        train_idx, held_idx, split_by = holdout.split(
            faces, labels, args.data, args.holdout, args.seed
        )
        readers.check_images(faces)
        replay = read_replay(args.replay, args.replay_exclude)
        check = check_set(args) if args.check else None
    except readers.DataError as e:
        sys.exit(f"finetune: {e}")
    train = [faces[i] for i in train_idx]
    held = [faces[i] for i in held_idx]
    held_labels = np.array([labels[i] for i in held_idx])
    log.info(
        "faces: %d to train on, %d held out (split by %s); %d replay faces",
        len(train),
        len(held),
        split_by,
        len(replay),
    )

    args.weights = args.weights or shipped.weights(SHIPPED, args.replay or args.data)
    card = ModelCard.read(args.weights.with_suffix(".json"))
    if args.route and (card.details.get("fine_tuned") or {}).get("routing"):
        sys.exit(f"finetune: {args.weights} is one side of a routed model; start from the shipped "
                 "model, or pass --no-route")  # fmt: skip
    before_onnx = args.weights.with_suffix(".onnx")
    before = scores(before_onnx, held, held_labels)
    check_before = scores(before_onnx, *check) if check else None

    started, cpu_started = time.time(), time.process_time()
    seed_everything(args.seed)  # random, numpy and torch: the augmentations draw from all three
    seen = (
        look.measure([f.path for f in train], [f.path for f in replay], card.input_size, args.seed)
        if replay and args.replay_look
        else None
    )
    if seen is not None:
        log.info("%.0f%% of the replay faces in your folder's look (its tone; blur %.2f px)",
                 args.replay_look * 100, seen.blur)  # fmt: skip
    model = fine_tune(args, card, train, held, replay, seen)
    if args.average < 1:
        averaged(model, export.load_shipped(args.weights).state_dict(), args.average)
    if args.refit_bn:
        rng = np.random.default_rng(args.seed)
        drawn = drawn_from(replay, len(train), rng)
        mixed = [(train + drawn)[i] for i in rng.permutation(len(train) + len(drawn))]
        refit_batchnorm(model, mixed, card)
    seconds, cpu_seconds = time.time() - started, time.process_time() - cpu_started

    args.out.parent.mkdir(parents=True, exist_ok=True)
    adjustment = card.details["logit_adjustment"]
    adjustment.pop("class_shift", None)  # a fine-tuned start's: refitted for this folder below
    flip_tta = bool(card.details.get("flip_tta", True))
    graph = export.exported_graph(model, flip_tta, export.card_offset(adjustment))
    export.export_onnx(graph, card.input_size, args.out)
    dropped = ("metrics", "calibration", *export.STORAGE)  # the start's, not the new file's
    details = {k: v for k, v in card.details.items() if k not in dropped}
    details["weights"] = export.save_weights(model, args.out.with_suffix(".pth"))
    counts = {"train": per_class(train), "held_out": per_class(held)}
    details["fine_tuned"] = {
        "from": f"{card.label} ({args.weights})",
        "data": str(args.data),
        "command": "python -m training.adapt.finetune "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.bs,
        "replay": {
            "data": str(args.replay),
            "share": args.replay_share,
            "balance": args.replay_balance,
            "in_your_look": args.replay_look,
            "excluded": str(args.replay_exclude) if args.replay_exclude else None,
            "look": {"blur": seen.blur} if seen else None,
        }
        if replay
        else None,
        "distill": args.distill,
        "absent_out_of_your_loss": not (args.teach_absent and replay),
        "frozen": args.frozen,
        "average": args.average,
        "refit_bn": args.refit_bn,
        "split": split_by,
        "faces": counts,
        "wall_seconds": round(seconds, 1),
        # CPU time of all threads: with --threads 1, what an otherwise idle core would take
        "cpu_seconds": round(cpu_seconds, 1),
        "threads": args.threads,
    }
    tuned = dataclasses.replace(card, version=time.strftime("%Y%m%d") + "-ft", details=details)
    tuned.write(args.out.with_suffix(".json"))
    absent = [i for i, c in enumerate(CLASSES) if c not in counts["train"]]
    shifted = list(range(len(CLASSES))) if args.shift_classes == "all" else absent
    if replay and shifted:
        details["fine_tuned"]["class_shares"] = give_back_shares(
            args, model, tuned, replay, shifted, before_onnx, seen
        )
        tuned.write(args.out.with_suffix(".json"))
    calibration = replay or train
    if args.route:  # the fine-tuned network reads faces like yours: its ranges from both kinds
        calibration = train + drawn_from(replay, len(train), np.random.default_rng(args.seed))
    # int8 by default when the start computes in int8 (its card's `quantization`)
    if "quantization" in card.details if args.int8 is None else args.int8:
        details["quantization"] = in_int8(args.out, tuned, calibration, args.seed)
        tuned.write(args.out.with_suffix(".json"))
    if args.route:
        details["fine_tuned"]["routing"] = routed(args, tuned, train, held, replay, before_onnx)
        tuned.write(args.out.with_suffix(".json"))

    after = scores(args.out, held, held_labels)
    checked = None
    if check:
        after_check = scores(args.out, *check)
        checked = {"data": str(args.check), "before": check_before, "after": after_check}
    notes = warnings(counts["train"], checked)
    notes += route_warnings(details["fine_tuned"].get("routing"))
    details["fine_tuned"].update(held_out={"before": before, "after": after}, check=checked,
                                 warnings=notes)  # fmt: skip
    tuned.write(args.out.with_suffix(".json"))

    print("faces per class (train / held out): " + ", ".join(
        f"{c} {counts['train'].get(c, 0)}/{counts['held_out'].get(c, 0)}" for c in CLASSES
    ))  # fmt: skip
    print(table(f"held out of {args.data} (split by {split_by})", before, after))
    if checked:
        print(table(f"other people: {args.check}", check_before, checked["after"]))
    else:
        print("No check set (--check none): nothing measures what the model may have forgotten.")
    routing = details["fine_tuned"].get("routing")
    if routing:
        sent = routing["sent_to_fine_tuned"]
        held_share = "-" if sent["your_held_out"] is None else f"{sent['your_held_out']:.0%}"
        print(f"routed ({routing['routed_mb']} MB): the fine-tuned network reads "
              f"{held_share} of your held-out faces and "
              f"{sent['fer_not_fitted_on']:.1%} of {routing['faces_tried']['fer_not_fitted_on']} "
              "other FER+ faces; the original reads the rest")  # fmt: skip
    for note in notes:
        print(f"WARNING: {note}")
    print(json.dumps({"out": str(args.out), "before": before, "after": after, "check": checked,
                      "warnings": notes, "seconds": round(seconds, 1),
                      "cpu_seconds": round(cpu_seconds, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
