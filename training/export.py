"""Export a trained run to ONNX (dynamic batch) with its model card beside it.

python -m training.export --run runs/NAME [--out models/emotion.onnx] [--checkpoint epoch_N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from emotion.card import ModelCard
from training.model import FlipAverage, build_model

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
        "Contempt and Disgust have few training faces and the lowest recall (see metrics).",
        "Confidence is calibrated (one temperature) on FER+ Valid faces; on faces unlike "
        "FER2013's (other cameras, light, ages) it can be over- or under-confident.",
    ],
    "not_for": (
        "Never a basis for decisions about a person (hiring, policing, grading, credit, "
        "health, surveillance). Frames are classified in memory and never stored."
    ),
}


def load_weights(run: Path, checkpoint: str | None) -> torch.nn.Module:
    model = build_model()
    if checkpoint:
        state = torch.load(run / "models" / f"{checkpoint}.pth", map_location="cpu")
        state = state.get("model", state)  # fastai saves {"model", "opt"} with_opt
    else:
        state = torch.load(run / "final.pth", map_location="cpu")
    model.load_state_dict(state)
    return model.eval()


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


def run_card(run: Path, checkpoint: str | None, flip_tta: bool) -> ModelCard:
    config = json.loads((run / "config.json").read_text())
    base = ModelCard(**{**config["card"], "classes": tuple(config["card"]["classes"])})
    timing = run / "timing.json"
    train_seconds = json.loads(timing.read_text())["train_seconds"] if timing.is_file() else None
    args = config["args"]
    details = {
        "architecture": "fastai vision_learner(resnet34, pretrained=False, n_in=1), from scratch",
        "outputs": "logits in the order of classes; probabilities = softmax(logits / temperature)",
        "flip_tta": flip_tta,
        "data": {
            "train": args["train"],
            "valid": args["valid"],
            "targets": "annotator vote distribution (soft labels), unknown/NF votes removed",
        },
        "recipe": {
            "command": config["command"],
            "epochs": args["epochs"],
            "batch_size": args["bs"],
            "lr": args["lr"],
            "weight_decay": args["wd"],
            "schedule": "fastai fit_one_cycle, AdamW, bfloat16 autocast",
            "hardware": config.get("hardware", "CPU"),
            "augmentation": "flip, rotate 12, zoom 1.15, warp 0.1, lighting 0.35, "
            "random erasing 0.3",
            "seed": args["seed"],
            "checkpoint": checkpoint or "final",
        },
        "train_wall_seconds": train_seconds,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **INTENDED_USE,
    }
    return ModelCard(**{**base.__dict__, "details": details})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--checkpoint", help="e.g. epoch_11 (default: the run's final weights)")
    p.add_argument("--no-flip-tta", action="store_true", help="do not bake mirror averaging in")
    args = p.parse_args(argv)

    model = load_weights(args.run, args.checkpoint)
    flip_tta = not args.no_flip_tta
    card = run_card(args.run, args.checkpoint, flip_tta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(FlipAverage(model) if flip_tta else model, card.input_size, args.out)
    card.write(args.out.with_suffix(".json"))
    log.info("exported %s (%.1f MB) and its card", args.out, args.out.stat().st_size / 1e6)


if __name__ == "__main__":
    main()
