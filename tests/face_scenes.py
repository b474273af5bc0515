"""Group photos built from faces that ship with scikit-image (never FER+ files), with the
true position of every face, for the detector's recall tests and the /faces benchmark.

Sources: the astronaut (Eileen Collins), the cameraman, and the 100 faces of `lfw_subset`.
Each person is scaled to a face width, optionally mirrored and rotated in the image plane
(up to 45 degrees), and pasted onto a background photo that holds no face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageOps
from skimage import data as skdata

# Non-face photos shipped by scikit-image: the detector must draw no box on them.
NON_FACE_PHOTOS = ("coffee", "chelsea", "rocket", "coins", "brick", "grass", "hubble_deep_field")


@dataclass(frozen=True)
class Source:
    image: Image.Image  # head and shoulders
    face_centre: tuple[float, float]  # in the source's pixels
    face_width: float


@dataclass(frozen=True)
class Person:
    source: str  # "astronaut", "camera" or "lfw<N>"
    width: int  # the face's width in the photo, px
    centre: tuple[int, int]  # the face's centre in the photo
    angle: float = 0.0  # degrees, counter-clockwise
    mirror: bool = False


@dataclass(frozen=True)
class TrueFace:
    centre: tuple[float, float]
    width: float


@cache
def source(name: str) -> Source:
    if name == "astronaut":
        head = Image.fromarray(skdata.astronaut()).crop((120, 0, 330, 260))
        return Source(head, (105.0, 117.0), 95.0)
    if name == "camera":
        head = Image.fromarray(skdata.camera()).convert("RGB").crop((150, 60, 310, 260))
        return Source(head, (75.0, 94.0), 61.0)
    if name.startswith("lfw"):
        pixels = (skdata.lfw_subset()[int(name[3:])] * 255).astype(np.uint8)
        face = Image.fromarray(pixels).convert("RGB")  # the first 100 are faces
        return Source(face, (12.5, 13.0), 19.0)
    raise ValueError(name)


def background(name: str, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB").resize(size)


def compose(people: list[Person], size=(1280, 720), back="coffee") -> tuple[Image.Image, list]:
    photo = background(back, size)
    truth = []
    for person in people:
        src = source(person.source)
        scale = person.width / src.face_width
        image = src.image.resize(
            (round(src.image.width * scale), round(src.image.height * scale)),
            Image.Resampling.BICUBIC,
        ).convert("RGBA")
        fx, fy = src.face_centre[0] * scale, src.face_centre[1] * scale
        if person.mirror:
            image = ImageOps.mirror(image)
            fx = image.width - fx
        dx, dy = fx - image.width / 2, fy - image.height / 2
        if person.angle:
            image = image.rotate(person.angle, Image.Resampling.BICUBIC, expand=True)
            t = math.radians(person.angle)
            dx, dy = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
        left = round(person.centre[0] - image.width / 2 - dx)
        top = round(person.centre[1] - image.height / 2 - dy)
        photo.paste(image, (left, top), image)
        truth.append(TrueFace((float(person.centre[0]), float(person.centre[1])), person.width))
    return photo, truth


GROUP = [
    Person("astronaut", 150, (200, 260)),
    Person("camera", 110, (520, 250)),
    Person("astronaut", 90, (790, 230), angle=30, mirror=True),
    Person("astronaut", 70, (1090, 250), angle=-45),
    Person("lfw0", 60, (180, 600)),
    Person("camera", 45, (470, 610), angle=15),
    Person("astronaut", 40, (760, 610)),
    Person("camera", 55, (1080, 600), angle=-30, mirror=True),
]

# Three faces in a 1280x720 photo: the /faces benchmark's request.
TRIO = [
    Person("astronaut", 130, (260, 330)),
    Person("camera", 100, (640, 330)),
    Person("astronaut", 90, (1010, 330), angle=20, mirror=True),
]


def group_photo() -> tuple[Image.Image, list[TrueFace]]:
    """1280x720, eight people: faces 40-150 px wide, some turned 15-45 degrees.

    (lfw_subset's faces are bare 25 px crops: upscaled and rotated they lose what a detector
    needs, so the one used here is upright.)"""
    return compose(GROUP)


def trio_photo() -> tuple[Image.Image, list[TrueFace]]:
    return compose(TRIO)


def matches(box: dict, face: TrueFace) -> bool:
    """A detector box is this face if it holds the face's centre and is about its size."""
    cx, cy = face.centre
    inside = (
        box["x"] <= cx <= box["x"] + box["width"] and box["y"] <= cy <= box["y"] + box["height"]
    )
    return inside and 0.5 * face.width <= box["width"] <= 2.0 * face.width


def best_scores(found: list, truth: list[TrueFace]) -> list[float]:
    """Per true face, the highest score among the detections (`emotion.detect.Detection`)
    whose box `matches` it; 0 where none does."""
    return [max((f.score for f in found if matches(f.as_box(), t)), default=0.0) for t in truth]


def scaled(truth: list[TrueFace], factor: float) -> list[TrueFace]:
    """The true faces of a copy of the photo resized by `factor`."""
    return [TrueFace((t.centre[0] * factor, t.centre[1] * factor), t.width * factor) for t in truth]
