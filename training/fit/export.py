"""Export trained weights to ONNX (dynamic batch) with the model card and the weights beside it.

python -m training.fit.export --run runs/NAME [--out runs/float/emotion.onnx] [--checkpoint epoch_N]
python -m training.fit.export --weights PATH.pth [--out runs/float/emotion.onnx]

The float export; training.ship.int8_weights then stores it as models/emotion.onnx
(weight-only int8). It also writes the weights as a float16 state dict next to the ONNX
file. On a fresh clone, `python -m training.fit.shipped` rebuilds the shipped model's from
models/emotion.onnx (what `make export` passes as --weights). From --weights, the card beside
them (same stem, .json) supplies the rest.

The network is trained with a logit-adjusted loss, so its raw logits are class-balanced.
`--prior-weight b` adds b * log(class prior) to the exported logits: 0 keeps the balanced
decision rule (best mean per-class recall), 1 restores the training prior (best accuracy).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from emotion.card import ModelCard
from training.data.augment import CHANCES
from training.fit.model import SERVER, FlipAverage, LogitOffset, build_model

log = logging.getLogger("training")

INTENDED_USE = {
    "intended_use": (
        "Live feedback on the facial expression a person shows to their own camera, for demos, "
        "games, accessibility aids and research prototypes."
    ),
    "limitations": [
        "Reads expressions, not feelings: a face can show one thing and a person feel another.",
        "Trained on FER2013 faces: mostly posed or web-scraped, frontal, low resolution "
        "(48x48). Spontaneous, subtle, profile, occluded or badly lit faces are read less "
        "reliably.",
        "FER2013 under-represents children, older adults and darker skin tones; accuracy for "
        "them is not measured here and is likely lower.",
        "Contempt and Disgust have the fewest training faces (about 2% of the votes each) "
        "and the least reliable recall: see every class's recall in metrics.valid.recall. The "
        "loss is logit-adjusted so rare classes are named, which makes Neutral and Happiness "
        "slightly less often right than a prior-following model.",
        "Confidence is calibrated (one temperature) on FER+ Valid faces; on faces unlike "
        "FER2013's (other cameras, light, ages) it can be over- or under-confident.",
    ],
    "license": "MIT (weights trained from scratch by this project; see LICENSE); derived "
    "from FER2013 images, which are for research use only",
    "data_sources": {
        "images": {
            "name": "FER2013",
            "url": "https://www.kaggle.com/c/challenges-in-representation-learning-facial-"
            "expression-recognition-challenge",
            "license": "research use only; photo rights stay with their owners",
        },
        "labels": {
            "name": "FER+",
            "url": "https://github.com/microsoft/FERPlus",
            "license": "MIT, Microsoft Corporation",
        },
    },
    "not_for": (
        "Never a basis for decisions about a person (hiring, policing, grading, credit, "
        "health, surveillance). Frames are classified in memory and never stored."
    ),
}


def run_arch(run: Path) -> str:
    return json.loads((run / "config.json").read_text())["args"].get("arch", SERVER)


def load_weights(run: Path, checkpoint: str | None) -> torch.nn.Module:
    if checkpoint:
        state = torch.load(run / "models" / f"{checkpoint}.pth", map_location="cpu")
        state = state.get("model", state)  # fastai saves {"model", "opt"} with_opt
    else:
        state = torch.load(run / "final.pth", map_location="cpu")
    return model_from_state(state, run_arch(run))


def model_from_state(state: dict[str, torch.Tensor], arch: str = SERVER) -> torch.nn.Module:
    """The network in float32 (shipped weights are float16 to halve the file)."""
    model = build_model(arch)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def load_shipped(weights: Path, arch: str | None = None) -> torch.nn.Module:
    """Float16 weights; `arch`, else their card beside them (when there), names the network."""
    card = weights.with_suffix(".json")
    if arch is None:
        arch = ModelCard.read(card).details.get("arch", SERVER) if card.is_file() else SERVER
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return model_from_state(state, arch)


def save_weights(model: torch.nn.Module, path: Path) -> dict[str, str | float]:
    """Float16 state dict (about 43 MB for ResNet34): what later steps start from."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"file": path.name, "dtype": "float16", "sha256": digest,
            "mb": round(path.stat().st_size / 1e6, 1)}  # fmt: skip


def prior_offset(prior: list[float], weight: float) -> list[float]:
    return (weight * np.log(np.asarray(prior, dtype=np.float64))).tolist()


def card_offset(adjustment: dict) -> list[float] | None:
    """The offset on the logits a card's `logit_adjustment` describes: prior_weight x
    log(prior), plus `class_shift` where a fine-tune set one (training.adapt.finetune: the
    classes a user's folder lacked); None when there is none."""
    prior, weight = adjustment.get("prior"), adjustment.get("prior_weight", 0.0)
    offset = np.asarray(prior_offset(prior, weight)) if prior and weight else 0.0
    shift = adjustment.get("class_shift")
    total = offset + np.asarray(shift, dtype=np.float64) if shift else offset
    return total.tolist() if isinstance(total, np.ndarray) and total.any() else None


def exported_graph(model: torch.nn.Module, flip_tta: bool, offset: list[float] | None):
    graph = FlipAverage(model) if flip_tta else model
    return LogitOffset(graph, offset) if offset and any(offset) else graph


def export_onnx(model: torch.nn.Module, size: int, out: Path) -> None:
    dummy = torch.zeros(2, 1, size, size)
    torch.onnx.export(
        model,
        (dummy,),
        str(out),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,  # the TorchScript exporter: one self-contained file, no onnxscript
    )


def run_card(run: Path, checkpoint: str | None, flip_tta: bool, prior_weight: float) -> ModelCard:
    config = json.loads((run / "config.json").read_text())
    base = ModelCard(**{**config["card"], "classes": tuple(config["card"]["classes"])})
    timing = run / "timing.json"
    train_seconds = json.loads(timing.read_text())["train_seconds"] if timing.is_file() else None
    args = config["args"]
    arch = args.get("arch", SERVER)
    body = arch if arch == SERVER else f"timm {arch}"
    details = {
        "arch": arch,
        "architecture": f"fastai vision_learner({body}, pretrained=False, n_in=1), from scratch",
        "outputs": "logits in the order of classes; probabilities = softmax(logits / temperature)",
        "flip_tta": flip_tta,
        "logit_adjustment": logit_adjustment(config, prior_weight),
        "data": {
            "train": args["train"],
            "valid": args["valid"],
            "targets": targets(args),
        },
        "recipe": {
            "command": config["command"],
            "epochs": args["epochs"],
            "batch_size": args["bs"],
            "lr": args["lr"],
            "weight_decay": args["wd"],
            "schedule": "fastai fit_one_cycle, AdamW, bfloat16 autocast",
            "hardware": config.get("hardware", "CPU"),
            "augmentation": augmentation(args),
            "seed": args["seed"],
            "checkpoint": checkpoint or "final",
            **started_from(args),
        },
        "train_wall_seconds": train_seconds,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **INTENDED_USE,
    }
    return ModelCard(**{**base.__dict__, "details": details})


def targets(args: dict) -> str:
    votes = "annotator vote distribution (soft labels), unknown/NF votes removed"
    if not args.get("teacher"):
        return votes
    members = ", ".join(Path(t).name for t in args["teacher"])
    share = args.get("teacher_weight", 0.5)
    return (
        f"distilled: {1 - share:g} x the {votes}, {share:g} x the teacher's probabilities "
        f"(mean of the members' in {members}, each at its temperature)"
    )


def started_from(args: dict) -> dict:
    """A run that began from trained weights (--init) names them, their own recipe and which
    layers it trained, so the card tells the model's whole lineage."""
    if not args.get("init"):
        return {}
    init = Path(args["init"])
    before = init.with_suffix(".json")
    recipe = json.loads(before.read_text()).get("recipe", {}) if before.is_file() else {}
    frozen = args.get("frozen") or []
    trained = f"every layer but {', '.join(frozen)} (kept as loaded)" if frozen else "every layer"
    return {"started_from": {"weights": str(init), "recipe": recipe, "trained": trained}}


def augmentation(args: dict) -> str:
    """The training augmentation in words, from the run's arguments."""
    standard = "flip, rotate 8, zoom 1.1, warp 0.1, lighting 0.35, random erasing 0.3"
    # Runs from before --live-aug said "no_live_aug" instead.
    strength = args.get("live_aug", 0.0 if args.get("no_live_aug", True) else 1.0)
    if not strength:
        return standard
    p = {name: round(base * strength, 2) for name, base in CHANCES.items()}
    return (
        f"detector-box jitter (scale +-15%, shift +-10% of the side, rotation +-15 deg, edge "
        f"fill; p {p['frame']}), blur (p {p['blur']}), gamma 0.6-1.6 (p {p['gamma']}), JPEG "
        f"q30-90 (p {p['jpeg']}), occluding patch (p {p['patch']}); then {standard}"
    )


def logit_adjustment(config: dict, prior_weight: float) -> dict:
    tau = config["args"].get("tau", 0.0)
    defer = config["args"].get("defer", 0.0)
    return {
        "train_tau": tau,
        "train_tau_from_epoch": round(config["args"]["epochs"] * defer) if tau else None,
        "prior_weight": prior_weight,
        "prior": config.get("prior"),
        "rule": "training loss on logits + tau*log(prior); exported logits = network logits "
        "+ prior_weight*log(prior)",
    }


def carried_over(card_path: Path) -> dict:
    """Blocks other steps own (the detector's framing, licences) survive a re-export."""
    if not card_path.is_file():
        return {}
    old = json.loads(card_path.read_text())
    return {k: old[k] for k in CARRIED if k in old}


CARRIED = ("framing", "licence", "sources")
# What a card says about its file's int8 storage (training.ship.int8_weights) or compute
# (training.ship.int8_compute): not true of a float export from the same weights.
STORAGE = ("compact", "quantization", "derived_from")


def float_card(card: ModelCard) -> ModelCard:
    details = {k: v for k, v in card.details.items() if k not in STORAGE}
    return dataclasses.replace(card, details=details)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a training run folder")
    source.add_argument("--weights", type=Path, help="a shipped float16 state dict (+ its .json)")
    p.add_argument("--out", type=Path, default=Path("runs/float/emotion.onnx"))
    p.add_argument("--checkpoint", help="e.g. epoch_11 (default: the run's final weights)")
    p.add_argument(
        "--carry-from",
        type=Path,
        default=Path("models/emotion.json"),
        help="the card whose framing (training.measure.framing, crop_check) the export keeps",
    )
    p.add_argument("--no-flip-tta", action="store_true", help="do not bake mirror averaging in")
    p.add_argument(
        "--prior-weight",
        type=float,
        default=None,
        help="b in logits + b*log(prior) (default 0, or the card's with --weights)",
    )
    args = p.parse_args(argv)

    flip_tta = not args.no_flip_tta
    card_path = args.out.with_suffix(".json")
    kept = carried_over(args.carry_from)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.run:
        weight = args.prior_weight or 0.0
        card = run_card(args.run, args.checkpoint, flip_tta, weight)
        weights = args.out.with_suffix(".pth")
        card.details["weights"] = save_weights(load_weights(args.run, args.checkpoint), weights)
        # the ONNX file is exactly what the weights file holds
        model = load_shipped(weights, card.details["arch"])
    else:
        model = load_shipped(args.weights)
        card = float_card(ModelCard.read(args.weights.with_suffix(".json")))
        adjustment = dict(card.details.get("logit_adjustment") or {})
        if args.prior_weight is not None:
            adjustment["prior_weight"] = args.prior_weight
        card.details.update(flip_tta=flip_tta, logit_adjustment=adjustment)
        card.details["exported"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if args.weights.resolve() != args.out.with_suffix(".pth").resolve():
            card.details["weights"] = save_weights(model, args.out.with_suffix(".pth"))
    offset = card_offset(card.details.get("logit_adjustment") or {})
    export_onnx(exported_graph(model, flip_tta, offset), card.input_size, args.out)
    card.details.update(kept)
    card.write(card_path)
    log.info("exported %s (%.1f MB) and its card", args.out, args.out.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
