"""Put a model into the site build under a content-hashed name, with a manifest.

    python3 tools/site_model.py models/emotion-student.onnx build/site/models
    python3 tools/site_model.py models/face-detector.onnx build/site/models detector.json

Writes <out>/<stem>.<sha8>.onnx (the model file as git keeps it: served with long
cache headers, a new model gets a new name) and <out>/compact.json (or the name given), what
the page's worker reads first: the file to fetch, its size and SHA-256 (checked after
download), and the card's fields the page needs (the classifier's preprocessing and framing;
the detector's input, anchors and thresholds). Standard library only: the site build runs
before any virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

# What the browser needs from the card to preprocess and read the output exactly as the server.
CARD_FIELDS = (
    "classes",
    "input_size",
    "color_mode",
    "mean",
    "std",
    "resize",
    "temperature",
    "flip_tta",
    "framing",  # the detector's box -> the classifier's crop (emotion.framing)
)
# The same for the face detector's card (emotion.detect reads these).
DETECTOR_FIELDS = ("mean_bgr", "anchors", "thresholds", "pad_multiple")
FIELDS = {"compact.json": CARD_FIELDS, "detector.json": DETECTOR_FIELDS}


def publish(model: Path, out: Path, manifest_name: str = "compact.json") -> dict:
    card = json.loads(model.with_suffix(".json").read_text())
    data = model.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"{model.stem}.{digest[:8]}{model.suffix}"
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{model.stem}.*{model.suffix}"):
        stale.unlink()
    shutil.copyfile(model, out / name)
    compact = card.get("compact", {})
    manifest = {
        "file": name,
        "bytes": len(data),
        "sha256": digest,
        "label": f"{card['name']}@{card['version']}",
        **{k: card[k] for k in FIELDS[manifest_name] if k in card},
    }
    if manifest_name == "compact.json":
        manifest["valid_accuracy"] = compact.get("accuracy")
        manifest["valid_mean_recall"] = compact.get("mean_recall")
    (out / manifest_name).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] not in FIELDS):
        sys.exit(__doc__)
    print(json.dumps(publish(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:])))
