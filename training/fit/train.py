"""Train the emotion model with fastai; checkpoint every epoch; resumable.

    python -m training.fit.train --train DIR --valid DIR --run runs/NAME [--epochs 20] [--resume]

DIR is either FER+'s layout (label.csv with votes) or one folder per class. Writes
runs/NAME/config.json (the recipe and the card's preprocessing), models/epoch_N.pth
checkpoints with optimizer state, history.csv, and final.pth (weights only) when done.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.tracker import SaveModelCallback
from fastai.vision.all import CSVLogger, Learner, vision_learner

from emotion.card import CLASSES, ModelCard
from training.data import readers
from training.fit import distill, pipeline
from training.fit.export import load_shipped
from training.fit.model import ARCHES, SERVER, SoftTargetCrossEntropy, learner_arch, soft_accuracy

log = logging.getLogger("training")


class BFloat16Autocast(Callback):
    """Forward pass in bfloat16 (about 1.6x faster on this CPU; also on a GPU); loss in
    float32."""

    order = 10

    def before_batch(self) -> None:
        self.autocast = torch.autocast(self.dls.device.type, dtype=torch.bfloat16)
        self.autocast.__enter__()

    def after_pred(self) -> None:
        self.autocast.__exit__(None, None, None)
        self.learn.pred = self.pred.float()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--train", type=Path, required=True, help="training faces (either layout)")
    p.add_argument("--valid", type=Path, help="validation faces; default: --valid-pct of train")
    p.add_argument("--valid-pct", type=float, default=0.1)
    p.add_argument("--run", type=Path, required=True, help="folder for checkpoints and logs")
    p.add_argument(
        "--arch",
        choices=ARCHES,
        default=SERVER,
        help="the network: the server's ResNet34, or a student for the device (timm)",
    )
    p.add_argument("--size", type=int, default=64, help="input side in pixels (48-112)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd", type=float, default=0.05)
    p.add_argument("--mean", type=float, default=0.5, help="pixel mean after /255")
    p.add_argument("--std", type=float, default=0.25, help="pixel std after /255")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--tau",
        type=float,
        default=1.0,
        help="logit adjustment: loss on logits + tau*log(class prior); 0 = plain",
    )
    p.add_argument(
        "--defer",
        type=float,
        default=0.0,
        help="logit adjustment only from this fraction of the epochs on (deferred balancing:\n"
        "the plain loss learns the representation first); 0 = from the start",
    )
    p.add_argument(
        "--live-aug",
        type=float,
        default=0.5,
        help="strength of detector-box jitter, blur, JPEG, gamma and occlusion (0 = none)",
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from these weights (a float16 state dict, e.g. the shipped model's, which\n"
        "`python -m training.fit.shipped` rebuilds and prints the path of):\n"
        "re-balancing or fine-tuning a trained model rather than training from scratch",
    )
    p.add_argument(
        "--frozen",
        nargs="+",
        choices=PARTS,
        default=[],
        help="with --init: keep these parts of the ResNet body exactly as loaded (weights and\n"
        "BatchNorm statistics); the committed model files then change only where training did",
    )
    p.add_argument(
        "--teacher",
        type=Path,
        nargs="+",
        default=[],
        help="distil: teacher answers (.npz files, or folders of them, e.g.\n"
        "training/measure/teacher); each Train face's target blends its votes with them",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=0.5,
        help="with --teacher: the teacher's share of each target (the votes have the rest)",
    )
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--no-bf16", action="store_true", help="train in float32")
    p.add_argument("--limit", type=int, help="use at most this many faces per split (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    return p.parse_args(argv)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_splits(args: argparse.Namespace) -> tuple[list[readers.Face], list[readers.Face]]:
    train, _ = readers.read_dataset(args.train)
    if args.valid:
        valid, _ = readers.read_dataset(args.valid)
    else:
        order = np.random.default_rng(args.seed).permutation(len(train))
        cut = max(1, int(len(train) * args.valid_pct))
        valid = [train[i] for i in order[:cut]]
        train = [train[i] for i in order[cut:]]
    if args.limit:
        train, valid = train[: args.limit], valid[: args.limit]
    readers.check_images(train + valid)
    return train, valid


def training_card(args: argparse.Namespace) -> ModelCard:
    """The preprocessing half of the model card; export adds the rest."""
    return ModelCard(
        name=f"emotion-{args.arch}",
        version=time.strftime("%Y%m%d"),
        classes=CLASSES,
        input_size=args.size,
        color_mode="L",
        mean=args.mean,
        std=args.std,
        resize="bilinear",
    )


def json_value(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA)"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def last_checkpoint(model_dir: Path) -> int | None:
    epochs = [int(m.group(1)) for p in model_dir.glob("epoch_*.pth")
              if (m := re.fullmatch(r"epoch_(\d+)\.pth", p.name))]  # fmt: skip
    return max(epochs) if epochs else None


class DeferredLogitAdjustment(Callback):
    """Plain soft-label loss before `start_epoch`, the logit-adjusted one from it on.

    Decided per epoch from the epoch number, so a resumed run switches at the same place.
    """

    def __init__(self, start_epoch: int):
        self.start_epoch = start_epoch

    def before_fit(self) -> None:
        self.adjusted = self.learn.loss_func.offset.clone()

    def before_epoch(self) -> None:
        on = self.epoch >= self.start_epoch
        self.learn.loss_func.offset = self.adjusted if on else torch.zeros_like(self.adjusted)
        if self.epoch == self.start_epoch:
            log.info("epoch %d: logit adjustment on from here", self.epoch)


# fastai's ResNet body: the stem (conv1, bn1, relu, maxpool), then four stages.
PARTS = {"stem": slice(0, 4), "layer1": slice(4, 5), "layer2": slice(5, 6),
         "layer3": slice(6, 7), "layer4": slice(7, 8), "head": None}  # fmt: skip


class Freeze(Callback):
    """Keeps parts of the body fixed: no gradients, and in eval mode whenever fastai switches
    the model to training (each epoch), so their BatchNorm running statistics are not updated
    either (fastai's own freeze trains BatchNorms)."""

    def __init__(self, parts: list[str]):
        self.parts = parts

    def frozen(self) -> list[torch.nn.Module]:
        body, head = self.learn.model[0], self.learn.model[1]  # fastai's vision_learner layout
        return [head if PARTS[part] is None else body[PARTS[part]] for part in self.parts]

    def before_fit(self) -> None:
        for module in self.frozen():
            for param in module.parameters():
                param.requires_grad_(False)

    def before_train(self) -> None:  # after TrainEvalCallback's model.train() (order -10)
        for module in self.frozen():
            module.eval()


class EpochLog(CSVLogger):
    """fastai's CSV log for a resumable run: one header per file and one row per trained
    epoch. A resume starts at `first_epoch`: rows from there on (an epoch logged but not
    checkpointed before a stop) are dropped, and the skipped epochs log nothing."""

    def __init__(self, first_epoch: int = 0):
        super().__init__(fname="history.csv", append=True)
        self.first_epoch = first_epoch

    def before_fit(self) -> None:
        path = self.path / self.fname
        lines = path.read_text().splitlines() if path.is_file() else []
        kept = lines[:1] + [row for row in lines[1:] if int(row.split(",")[0]) < self.first_epoch]
        path.write_text("".join(f"{row}\n" for row in kept))
        self.file = path.open("a")
        if not kept:
            self.file.write(",".join(self.recorder.metric_names) + "\n")
        self.old_logger, self.learn.logger = self.logger, self._write_line

    def _write_line(self, log: list) -> None:
        if self.epoch >= self.first_epoch:
            super()._write_line(log)
        else:
            self.old_logger(log)


class KeepLastCheckpoints(Callback):
    """Delete all but the newest two epoch checkpoints (each is ~250 MB with Adam state)."""

    order = SaveModelCallback.order + 1

    def after_epoch(self) -> None:
        model_dir = self.path / self.model_dir
        for p in sorted(model_dir.glob("epoch_*.pth"), key=lambda p: p.stat().st_mtime)[:-2]:
            p.unlink()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if args.frozen and not args.init:
        raise SystemExit("--frozen needs --init: the frozen layers must be trained ones")
    run: Path = args.run
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    config_path = run / "config.json"
    if args.resume and config_path.is_file():
        saved = json.loads(config_path.read_text())["args"]
        # A resumed schedule must not change shape.
        for key in ("size", "epochs", "bs", "lr", "wd", "mean", "std", "seed", "tau", "defer"):
            setattr(args, key, saved.get(key, 0.0))
        args.live_aug = saved.get("live_aug", 0.0)
        args.arch = saved.get("arch", SERVER)
        args.frozen = saved.get("frozen", [])
        args.teacher = [Path(t) for t in saved.get("teacher", [])]
        args.teacher_weight = saved.get("teacher_weight", 0.0)
    card = training_card(args)
    train, valid = load_splits(args)
    log.info("faces: %d train, %d valid", len(train), len(valid))

    prior = readers.class_prior(train)  # the votes' prior, before any teacher's blend
    log.info("class prior: %s", dict(zip(CLASSES, np.round(prior, 4).tolist(), strict=True)))
    if args.teacher:
        members = distill.member_files(args.teacher)
        teacher = distill.teacher_probabilities(members)
        train = distill.distilled(train, teacher, args.teacher_weight)
        log.info("targets: %.2f teacher (%d members), the rest votes", args.teacher_weight,
                 len(members))  # fmt: skip
    dls = pipeline.dataloaders(
        train,
        valid,
        card,
        bs=args.bs,
        seed=args.seed,
        workers=args.workers,
        live_aug=args.live_aug,
    )
    learn: Learner = vision_learner(
        dls,
        learner_arch(args.arch),
        pretrained=False,  # no weights can be downloaded here: trained from scratch
        n_in=1,
        n_out=len(CLASSES),
        normalize=False,  # pipeline.batch_transforms normalises with the card's stats
        loss_func=SoftTargetCrossEntropy(prior, args.tau),
        metrics=[soft_accuracy],
        wd=args.wd,
        path=run,
        model_dir="models",
    )
    if not args.no_bf16:
        learn.add_cb(BFloat16Autocast())
    if args.tau and args.defer:
        learn.add_cb(DeferredLogitAdjustment(round(args.epochs * args.defer)))

    if args.frozen:
        learn.add_cb(Freeze(args.frozen))
    if args.init and not (args.resume and last_checkpoint(run / "models") is not None):
        learn.model.load_state_dict(load_shipped(args.init).state_dict())
        log.info("starting from %s", args.init)

    start = 0
    if args.resume and (done := last_checkpoint(run / "models")) is not None:
        learn.load(f"epoch_{done}", with_opt=True)
        start = done + 1
        log.info("resuming after epoch %d of %d", done, args.epochs)
    else:
        command = shlex.join(sys.argv[1:] if argv is None else argv)
        config = {
            "args": {k: json_value(v) for k, v in vars(args).items()},
            "command": f"python -m training.fit.train {command}",
            "hardware": hardware(),
            "prior": prior,
            "card": json.loads(json.dumps(card.__dict__, default=list)),
        }
        config_path.write_text(json.dumps(config, indent=2) + "\n")

    learn.add_cb(EpochLog(first_epoch=start))
    started = time.time()
    if start < args.epochs:
        with learn.no_bar():
            learn.fit_one_cycle(
                args.epochs,
                args.lr,
                start_epoch=start,
                cbs=[
                    SaveModelCallback(every_epoch=True, fname="epoch", with_opt=True),
                    KeepLastCheckpoints(),
                ],
            )
    torch.save(learn.model.state_dict(), run / "final.pth")
    elapsed = time.time() - started
    timing = run / "timing.json"
    previous = json.loads(timing.read_text())["train_seconds"] if timing.is_file() else 0.0
    timing.write_text(json.dumps({"train_seconds": previous + elapsed}) + "\n")
    log.info("done: %s", run / "final.pth")


if __name__ == "__main__":
    main()
