"""Configuration from the environment, read once when the app is built."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from emotion.detect import CROP_SIDE, PHOTO_SIDE
from emotion.detect import default_model_path as default_detector_path

_HERE = Path(__file__).resolve().parent
# The one upload limit: site/js/limits.js's MAX_UPLOAD_BYTES, which the page and the AWS stack
# read (Lambda's event holds a 4 MB body once base64-encoded); tests check they agree.
MAX_BODY_BYTES = 4_000_000


def _default_model() -> Path:
    # In the Lambda image the model sits beside the package; in a checkout, in models/.
    for candidate in (_HERE.parent / "models", _HERE.parents[1] / "models"):
        if (candidate / "emotion.onnx").is_file():
            return candidate / "emotion.onnx"
    return _HERE.parents[1] / "models" / "emotion.onnx"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Settings:
    model_path: Path
    static_dir: Path | None  # serve the page too (local only; Lambda never serves files)
    max_body_bytes: int  # whole request; site/js/limits.js's MAX_UPLOAD_BYTES (the stack's)
    max_pixels: int  # width * height, checked from the header before decoding
    min_side: int  # smaller images carry no face worth classifying
    threads: int  # ONNX Runtime intra-op threads
    detector_path: Path = field(default_factory=default_detector_path)
    max_faces: int = 50  # cap on POST /faces?max_faces (each face costs one classification)
    detect_side: int = PHOTO_SIDE  # /faces: photos are shrunk to this longer side to detect
    crop_detect_side: int = CROP_SIDE  # /face: the crop is checked for a face at this size; 0: off
    workers: int = field(default_factory=lambda: _cores())  # threads that decode and infer
    queue: int = field(default_factory=lambda: 4 * _cores())  # requests waiting; then 503
    body_timeout: float = 30.0  # seconds for a whole request body to arrive; then 408
    origin_secret: str | None = None  # on AWS: the header CloudFront adds (emotion/origin.py)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        static = env.get("EMOTION_STATIC_DIR")
        return cls(
            model_path=Path(env.get("EMOTION_MODEL", _default_model())),
            static_dir=Path(static) if static else None,
            max_body_bytes=int(env.get("EMOTION_MAX_BODY_BYTES", MAX_BODY_BYTES)),
            max_pixels=int(env.get("EMOTION_MAX_PIXELS", 16_000_000)),
            min_side=int(env.get("EMOTION_MIN_SIDE", 8)),
            threads=int(env.get("EMOTION_THREADS", 0)),  # 0: one per available core
            detector_path=Path(env.get("EMOTION_DETECTOR", default_detector_path())),
            max_faces=int(env.get("EMOTION_MAX_FACES", 50)),
            detect_side=int(env.get("EMOTION_DETECT_SIDE", PHOTO_SIDE)),
            crop_detect_side=int(env.get("EMOTION_CROP_DETECT_SIDE", CROP_SIDE)),
            workers=int(env.get("EMOTION_WORKERS", _cores())),
            queue=int(env.get("EMOTION_QUEUE", 4 * _cores())),
            body_timeout=float(env.get("EMOTION_BODY_TIMEOUT", 30.0)),
            origin_secret=env.get("EMOTION_ORIGIN_SECRET") or None,
        )
