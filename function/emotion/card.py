"""The model card: the one place that says how a face becomes the model's input.

Training writes it beside the ONNX file; serving and evaluation read it. Nothing about
preprocessing (classes, size, colour mode, normalisation, resize) is written anywhere else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The API's class names, in the order the model outputs them.
CLASSES: tuple[str, ...] = (
    "Anger",
    "Disgust",
    "Surprise",
    "Sadness",
    "Happiness",
    "Neutral",
    "Contempt",
    "Fear",
)


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    classes: tuple[str, ...]
    input_size: int  # square side in pixels
    color_mode: str  # Pillow mode the model sees, "L" (grayscale)
    mean: float  # normalisation after scaling pixels to [0, 1]
    std: float
    resize: str = "bilinear"  # Pillow resampling filter used to reach input_size
    # Probabilities are softmax(logits / temperature); fitted after training
    # (training/ship/calibrate.py).
    temperature: float = 1.0
    details: dict[str, Any] = field(default_factory=dict)  # data, recipe, metrics, limits

    def __post_init__(self) -> None:
        if not 0.01 <= self.temperature <= 100:
            raise ValueError(f"model card: temperature {self.temperature} is not in [0.01, 100]")

    @property
    def label(self) -> str:
        recalibration = self.details.get("recalibration")
        suffix = f"+{recalibration['id']}" if recalibration else ""
        return f"{self.name}@{self.version}{suffix}"

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        raw = json.loads(Path(path).read_text())
        known = {k: raw.pop(k) for k in list(raw) if k in cls.__dataclass_fields__}
        known["classes"] = tuple(known["classes"])
        details = {**known.pop("details", {}), **raw}
        return cls(**known, details=details)

    def write(self, path: Path) -> None:
        data = asdict(self)
        data["classes"] = list(self.classes)
        details = data.pop("details")
        Path(path).write_text(json.dumps({**data, **details}, indent=2) + "\n")
