"""The ONNX model and its card: a batch of face images -> class probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from emotion.card import ModelCard
from emotion.preprocess import to_input
from emotion.recalibration import Recalibration
from emotion.sessions import cpu_options


class EmotionModel:
    """Loaded once per process (Lambda init, server start), then shared by all requests."""

    def __init__(self, onnx_path: Path, threads: int = 0):
        self.card = ModelCard.read(Path(onnx_path).with_suffix(".json"))
        # A deployment's shift toward the people it serves (make recalibrate), or None.
        self.recalibration = Recalibration.from_card(self.card.details, self.card.classes)
        options = cpu_options(threads)
        if self.card.details.get("compact"):
            # Weight-only int8 (training/ship/int8_weights.py): fold its DequantizeLinear nodes
            # into float weights once, at load, rather than on every request (static int8 keeps
            # its QDQ).
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.warm_up()

    def warm_up(self) -> None:
        """One inference at load, so the first request does not pay for lazy allocation."""
        blank = Image.new("L", (self.card.input_size, self.card.input_size), 128)
        self.predict([blank])

    def predict(self, images: list[Image.Image]) -> np.ndarray:
        return self.probabilities(self.logits(images))

    def logits(self, images: list[Image.Image]) -> np.ndarray:
        batch = to_input(images, self.card)
        (logits,) = self.session.run(None, {self.input_name: batch})
        return logits.astype(np.float64)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        # The card's temperature makes confidence match accuracy; it never changes the top class.
        probabilities = softmax(logits / self.card.temperature)
        if self.recalibration is not None:
            probabilities = self.recalibration.apply(probabilities)
        return probabilities


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def ranked(probabilities: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """{class: probability}, most likely first (JSON keeps the order)."""
    order = np.argsort(-probabilities, kind="stable")
    return {classes[i]: round(float(probabilities[i]), 6) for i in order}
