"""Webcam scenes built from images that ship in packages: several "people" side by side (the
face of scikit-image's astronaut, scaled, mirrored, tilted or turned, on a drawn jacket with a
striped tie) in front of clutter that fools Viola-Jones (bookshelves, posters, stripes).

Each scene knows where its faces are, so tests can count what the page shows and check what
it sends. The astronaut smiles, so every person's expression is Happiness. In every scene the
largest face is at least 15% wider than the next, so "the main face" has one right answer."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FRAME = (640, 480)
FPS = 24
EXPRESSION = "Happiness"

# In skimage.data.astronaut() (512x512): the head with its hair, and the face inside it
# (brows to chin, ear to ear), in the photo's pixels.
HEAD = (148, 8, 312, 190)
FACE = (172, 62, 280, 180)


@cache
def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@cache
def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


@dataclass(frozen=True)
class Person:
    """One person: the face `face_px` wide, its centre at (cx, cy) in the frame."""

    cx: float
    cy: float
    face_px: float
    mirror: bool = False
    roll: float = 0.0  # head tilt in degrees (in the image plane)
    yaw: float = 0.0  # head turn in degrees, simulated by a perspective squeeze
    jacket: tuple[int, int, int] = (38, 42, 58)
    tie: tuple[int, int, int] = (150, 30, 40)
    sway: float = 3.0  # pixels of movement over the loop, so that crops change
    head: bool = True  # False: only the jacket and tie (a suit on a hanger: clutter, no face)


@dataclass(frozen=True)
class Scene:
    name: str
    people: tuple[Person, ...]
    background: str = "bookshelf"  # bookshelf | posters | wall
    seed: int = 0
    notes: str = ""
    extra: dict = field(default_factory=dict, hash=False, compare=False)


def _head(person: Person) -> tuple[Image.Image, Image.Image, tuple[float, float, float, float]]:
    """The head (RGBA, feathered oval) scaled and transformed, and the face box inside it."""
    photo = _astronaut().crop(HEAD)
    hw, hh = photo.size
    scale = person.face_px / (FACE[2] - FACE[0])
    face = [FACE[0] - HEAD[0], FACE[1] - HEAD[1], FACE[2] - HEAD[0], FACE[3] - HEAD[1]]
    mask = Image.new("L", (hw, hh), 0)
    ImageDraw.Draw(mask).ellipse((4, 2, hw - 4, hh + 30), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(4))
    if person.mirror:
        photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        face = [hw - face[2], face[1], hw - face[0], face[3]]
    head = photo.convert("RGBA")
    head.putalpha(mask)
    if person.yaw:
        # A turned head: the far side shrinks and compresses (a perspective squeeze).
        squeeze = math.cos(math.radians(person.yaw))
        far = 1 - 0.5 * math.sin(math.radians(abs(person.yaw)))
        w2 = hw * squeeze
        dy = hh * (1 - far) / 2
        if person.yaw > 0:  # the right side of the image turns away
            quad = [(0, 0), (0, hh), (w2, hh - dy), (w2, dy)]
        else:
            quad = [(0, dy), (0, hh - dy), (w2, hh), (w2, 0)]
        head = _warp(head, quad, (math.ceil(w2), hh))
        face = [face[0] * squeeze, face[1], face[2] * squeeze, face[3]]
    size = (max(1, round(head.width * scale)), max(1, round(head.height * scale)))
    head = head.resize(size, Image.Resampling.LANCZOS)
    face = [v * scale for v in face]
    if person.roll:
        centre = (head.width / 2, head.height / 2)
        head = head.rotate(person.roll, Image.Resampling.BICUBIC, expand=True)
        # The face's centre moves with the rotation; its box stays about the same size.
        fx, fy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
        a = math.radians(person.roll)
        dx, dy = fx - centre[0], fy - centre[1]
        nx = dx * math.cos(a) + dy * math.sin(a) + head.width / 2
        ny = -dx * math.sin(a) + dy * math.cos(a) + head.height / 2
        w, h = face[2] - face[0], face[3] - face[1]
        face = [nx - w / 2, ny - h / 2, nx + w / 2, ny + h / 2]
    return head, head.getchannel("A"), (face[0], face[1], face[2], face[3])


def _warp(image: Image.Image, quad, size) -> Image.Image:
    """Maps the image's corners onto `quad` (top-left, bottom-left, bottom-right, top-right)."""
    w, h = image.size
    src = [(0, 0), (0, h), (w, h), (w, 0)]
    # Solve for the perspective coefficients that map output points to input points.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(quad, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return image.transform(
        size, Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC
    )


def _body(draw: ImageDraw.ImageDraw, person: Person, chin: tuple[float, float], face_w: float):
    """A jacket, a white shirt and a striped tie below the chin."""
    cx, cy = chin
    w = face_w * 2.6
    bottom = FRAME[1] + 10
    neck = face_w * 0.42
    draw.polygon(
        [
            (cx - neck, cy - 4),
            (cx + neck, cy - 4),
            (cx + w / 2, cy + face_w * 0.5),
            (cx + w / 2 + 10, bottom),
            (cx - w / 2 - 10, bottom),
            (cx - w / 2, cy + face_w * 0.5),
        ],
        fill=person.jacket,
    )
    shirt = [(cx - neck * 0.8, cy - 4), (cx + neck * 0.8, cy - 4), (cx, cy + face_w * 1.6)]
    draw.polygon(shirt, fill=(235, 235, 230))
    # Lapels: lighter edges that make strong diagonal gradients.
    lapel = tuple(min(255, c + 40) for c in person.jacket)
    draw.line([(cx - neck * 0.8, cy), (cx - face_w * 0.1, cy + face_w * 1.6)], fill=lapel, width=4)
    draw.line([(cx + neck * 0.8, cy), (cx + face_w * 0.1, cy + face_w * 1.6)], fill=lapel, width=4)
    tw = face_w * 0.22
    tie = [
        (cx - tw / 2, cy),
        (cx + tw / 2, cy),
        (cx + tw * 0.8, cy + face_w * 1.4),
        (cx, cy + face_w * 1.6),
        (cx - tw * 0.8, cy + face_w * 1.4),
    ]
    draw.polygon(tie, fill=person.tie)
    step = max(4, face_w * 0.09)
    y = cy
    while y < cy + face_w * 1.6:  # diagonal stripes across the tie
        draw.line([(cx - tw, y + tw * 0.6), (cx + tw, y - tw * 0.6)], fill=(230, 220, 120), width=2)
        y += step


def _bookshelf(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    w, h = FRAME
    draw.rectangle((0, 0, w, h), fill=(96, 70, 48))
    shelf = 95
    for top in range(8, h, shelf):
        x = 6
        while x < w - 6:
            bw = rng.randint(8, 22)
            bh = rng.randint(shelf - 40, shelf - 14)
            colour = tuple(rng.randint(30, 220) for _ in range(3))
            draw.rectangle((x, top + shelf - 12 - bh, x + bw, top + shelf - 12), fill=colour)
            if rng.random() < 0.6:  # a title band on the spine
                band = top + shelf - 12 - bh + rng.randint(6, 20)
                draw.rectangle((x + 2, band, x + bw - 2, band + 5), fill=(240, 225, 180))
            x += bw + rng.randint(0, 3)
        draw.rectangle((0, top + shelf - 12, w, top + shelf - 4), fill=(60, 40, 28))


def _posters(canvas: Image.Image, draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    w, h = FRAME
    draw.rectangle((0, 0, w, h), fill=(188, 182, 168))
    font = ImageFont.load_default(size=22)
    # A striped poster, a checkerboard, concentric rings, a photo poster and a text poster.
    draw.rectangle((20, 30, 150, 210), fill=(250, 250, 245))
    for i in range(0, 180, 14):
        draw.line([(20, 30 + i), (150, 30 + i + 40)], fill=(20, 40, 120), width=6)
    for i in range(6):
        for j in range(8):
            if (i + j) % 2:
                draw.rectangle((480 + i * 22, 20 + j * 22, 502 + i * 22, 42 + j * 22), fill=0)
    for r in range(60, 0, -10):
        shade = 30 if r // 10 % 2 else 230
        draw.ellipse((300 - r, 90 - r, 300 + r, 90 + r), fill=(shade, shade, shade))
    coffee = _photo("coffee").resize((130, 100))
    canvas.paste(coffee, (170, 250))
    rocket = _photo("rocket").resize((90, 130))
    canvas.paste(rocket, (530, 220))
    draw.rectangle((380, 250, 520, 400), fill=(250, 240, 200))
    for k, line in enumerate(("OPEN", "HOUSE", "SAT 10", "ALL", "WELCOME")):
        draw.text((392, 258 + k * 27), line, fill=(20, 20, 20), font=font)
    del rng


def _smileys(canvas: Image.Image, draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    """Posters with drawn faces (a smiley, a mask) and a cat: face-like, but no person."""
    _bookshelf(draw, rng)
    for x, y, r in ((90, 110, 55), (560, 100, 45)):
        draw.rectangle((x - r - 12, y - r - 12, x + r + 12, y + r + 12), fill=(245, 240, 225))
        draw.ellipse(
            (x - r, y - r, x + r, y + r), fill=(250, 205, 70), outline=(40, 30, 20), width=3
        )
        e = r // 5
        for ex in (x - r // 2.6, x + r // 2.6):
            draw.ellipse((ex - e / 2, y - r / 3 - e, ex + e / 2, y - r / 3 + e), fill=(30, 20, 10))
        draw.arc(
            (x - r / 2, y - r / 6, x + r / 2, y + r / 1.6), 20, 160, fill=(30, 20, 10), width=4
        )
    canvas.paste(_photo("chelsea").resize((160, 106)), (280, 40))


def _background(scene: Scene) -> Image.Image:
    rng = random.Random(scene.seed)
    canvas = Image.new("RGB", FRAME, (170, 170, 165))
    draw = ImageDraw.Draw(canvas)
    if scene.background == "bookshelf":
        _bookshelf(draw, rng)
    elif scene.background == "posters":
        _posters(canvas, draw, rng)
    elif scene.background == "smileys":
        _smileys(canvas, draw, rng)
    return canvas


def render(scene: Scene, t: float = 0.0) -> tuple[Image.Image, list[tuple[float, ...]]]:
    """One frame at phase t (0..1) and the face boxes in it (x0, y0, x1, y1)."""
    canvas = _background(scene)
    draw = ImageDraw.Draw(canvas)
    boxes = []
    for k, person in enumerate(scene.people):
        phase = 2 * math.pi * (t + k / max(1, len(scene.people)))
        dx = person.sway * math.cos(phase)
        dy = person.sway * 0.6 * math.sin(phase)
        head, mask, face = _head(person)
        fx, fy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
        ox = round(person.cx + dx - fx)
        oy = round(person.cy + dy - fy)
        chin = (ox + fx, oy + face[3] - (face[3] - face[1]) * 0.05)
        _body(draw, person, chin, face[2] - face[0])
        if person.head:
            canvas.paste(head, (ox, oy), mask)
            boxes.append((ox + face[0], oy + face[1], ox + face[2], oy + face[3]))
    return canvas, boxes


def frames(scene: Scene, count: int = FPS) -> list[tuple[Image.Image, list[tuple[float, ...]]]]:
    return [render(scene, i / count) for i in range(count)]


SCENES: dict[str, Scene] = {
    s.name: s
    for s in (
        Scene(
            "man-and-woman",
            (
                Person(200, 190, 120, jacket=(30, 34, 48), tie=(140, 20, 30)),
                Person(450, 200, 105, mirror=True, jacket=(70, 52, 40), tie=(20, 60, 130)),
            ),
            background="bookshelf",
            seed=1,
            notes="two people, faces 105-120 px, jackets and striped ties, a bookshelf",
        ),
        Scene(
            "three-small",
            (
                Person(120, 170, 68, jacket=(40, 40, 40)),
                Person(320, 185, 62, mirror=True, roll=8, jacket=(20, 40, 80), tie=(200, 160, 20)),
                Person(520, 165, 80, jacket=(90, 30, 30), tie=(30, 30, 30)),
            ),
            background="posters",
            seed=2,
            notes="three people, faces 62-80 px, posters with stripes, rings and a checkerboard",
        ),
        Scene(
            "turned-and-tiny",
            (
                Person(210, 200, 115, yaw=30, jacket=(44, 48, 60)),
                Person(480, 170, 60, mirror=True, roll=-10, jacket=(60, 60, 70), tie=(10, 90, 40)),
            ),
            background="bookshelf",
            seed=3,
            notes="a face turned ~30 degrees and a 60 px face",
        ),
    )
}

# No one in view: suits on hangers with striped ties, a bookshelf, posters of smileys and a cat.
NOBODY = Scene(
    "nobody",
    (
        Person(170, 160, 110, head=False, jacket=(30, 34, 48), tie=(140, 20, 30)),
        Person(470, 170, 100, head=False, jacket=(70, 52, 40), tie=(20, 60, 130)),
    ),
    background="smileys",
    seed=3,
    notes="no one: jackets and striped ties, a bookshelf, drawn smileys and a cat on posters",
)
