"""The shipped model's PyTorch weights, rebuilt from models/emotion.onnx the first time a step
needs them (export, rebalance, fine-tuning, evaluate's parity check).

    python -m training.fit.shipped [--model models/emotion.onnx] [--faces DIR]   # prints the .pth

git keeps only the ONNX file. Its weights (weight-only int8, folded to float) are turned back
into a float16 state dict by training.fit.onnx_weights, checked against the ONNX file's logits,
and cached under runs/shipped/<the ONNX file's SHA-256, 16 digits>/ with a copy of the ONNX
file and its card (the steps that take --weights read the card, and fine-tuning scores the
ONNX file, beside the weights). A new model has a new digest, so a stale cache is never read.
The BatchNorm statistics the rebuild needs come from real faces: FER+ Train when it is at
../shared/data/ferplus, else --faces (any folder of faces: fine-tuning passes the user's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("training")

SHIPPED = Path("models/emotion.onnx")
CACHE = Path(__file__).resolve().parents[2] / "runs" / "shipped"  # gitignored
FERPLUS_TRAIN = Path("../shared/data/ferplus/FER2013Train")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_dir(model: Path = SHIPPED) -> Path:
    return CACHE / digest(model)[:16]


def faces_for_statistics(faces: Path | None) -> Path:
    if (FERPLUS_TRAIN / "label.csv").is_file():
        return FERPLUS_TRAIN
    if faces is None:
        raise SystemExit(
            f"rebuilding the shipped weights needs real faces for BatchNorm statistics: "
            f"{FERPLUS_TRAIN} is not here; pass a folder of faces (--faces)"
        )
    return faces


def weights(model: Path = SHIPPED, faces: Path | None = None) -> Path:
    """The float16 state dict that `model` holds, rebuilt once and cached; its card beside.
    Relative to the working directory when inside it (cards record the path)."""
    folder = cache_dir(model)
    if folder.is_relative_to(Path.cwd()):
        folder = folder.relative_to(Path.cwd())
    copy, pth = folder / model.name, folder / model.with_suffix(".pth").name
    folder.mkdir(parents=True, exist_ok=True)
    # The card may change without the weights (a recalibration): always today's. Copied under
    # another name, then renamed: a fine-tune started beside this one reads a whole card.
    card = copy.with_suffix(".json")
    partial_card = card.with_name(f"{card.name}.{os.getpid()}.partial")
    shutil.copyfile(model.with_suffix(".json"), partial_card)
    partial_card.replace(card)
    if pth.is_file():
        return pth
    from training.fit import onnx_weights  # PyTorch: only when something is rebuilt

    shutil.copyfile(model, copy)
    source = faces_for_statistics(faces)
    log.info("rebuilding %s's weights into %s (BatchNorm statistics: %s)", model, pth, source)
    partial = pth.with_suffix(".partial")
    report = onnx_weights.rebuild_file(copy, source, partial)
    partial.rename(pth)  # only a checked file gets the name later runs look for
    report = {**report, "file": pth.name, "sha256_onnx": digest(model), "faces": str(source)}
    (folder / "rebuilt.json").write_text(json.dumps(report, indent=2) + "\n")
    return pth


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=SHIPPED)
    p.add_argument("--faces", type=Path, help="faces for BatchNorm statistics without FER+")
    args = p.parse_args(argv)
    print(weights(args.model, args.faces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
