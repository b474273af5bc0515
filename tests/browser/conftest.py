"""Fixtures for the browser tests: the built page, the real server, a fake camera made from a
real face photo (scikit-image's astronaut), and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SITE_BUILD = ROOT / "build" / "site"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# The astronaut's face in skimage.data.astronaut() (512x512): about x 170-275, y 60-170.
FACE_CENTRE = (222, 115)
# The camera frame: a 4:3 window of the photo around the face, scaled to 640x480, so the face
# is about a third of the frame wide, as in a webcam held at arm's length.
WINDOW = (320, 240)
FRAME = (640, 480)
FRAMES = 24  # a second of slightly moving video, looped by Chromium


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def camera_frames(photo: Image.Image, count: int = FRAMES) -> list[Image.Image]:
    """The face window, swaying and zooming a little, so crops (and predictions) change."""
    frames = []
    cx, cy = FACE_CENTRE
    for i in range(count):
        t = 2 * math.pi * i / count
        zoom = 1 + 0.05 * math.sin(t)
        w, h = WINDOW[0] / zoom, WINDOW[1] / zoom
        x = cx - w / 2 + 6 * math.cos(t)
        y = cy - h / 2 + 4 * math.sin(t)
        box = (x, max(0.0, y), x + w, max(0.0, y) + h)
        frames.append(
            photo.transform(FRAME, Image.Transform.EXTENT, box, Image.Resampling.BILINEAR)
        )
    return frames


def write_y4m(path: Path, frames: list[Image.Image], fps: int = 24) -> Path:
    """YUV4MPEG2, 4:2:0 (JPEG-range YCbCr, which is what Pillow's YCbCr is)."""
    w, h = frames[0].size
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            y, cb, cr = frame.convert("YCbCr").split()
            half = (w // 2, h // 2)
            f.write(b"FRAME\n")
            f.write(np.asarray(y, dtype=np.uint8).tobytes())
            for plane in (cb, cr):
                f.write(np.asarray(plane.resize(half, Image.Resampling.BOX)).tobytes())
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    photo = astronaut()
    photo_path = folder / "astronaut.png"
    photo.save(photo_path)
    return {"photo": photo_path, "video": write_y4m(folder / "face.y4m", camera_frames(photo))}


@pytest.fixture(scope="session")
def site_build() -> Path:
    make = shutil.which("make")
    if make:
        done = subprocess.run([make, "-s", "site"], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"make site failed:\n{done.stdout}\n{done.stderr}"
    for name in ("index.html", "vendor/tracking-min.js", "vendor/face-min.js", "headers.json"):
        assert (SITE_BUILD / name).is_file(), f"{SITE_BUILD / name} is missing: run `make site`"
    return SITE_BUILD


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(site_build: Path, log_dir: Path, **env_extra: str) -> Iterator[str]:
    """The real app (API + page) under uvicorn, as `make run` starts it; env_extra sets more of
    its environment (EMOTION_MODEL=... for another model)."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)]),
        "EMOTION_STATIC_DIR": str(site_build),
        **env_extra,
    }
    log = (log_dir / "uvicorn.log").open("w+")
    command = [sys.executable, "-m", "uvicorn", "emotion.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"the server exited ({process.returncode}):\n{log.read()}")
            try:
                if httpx.get(url + "health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the server did not answer /health within 60 s:\n{log.read()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def serve_app():
    """`serve` for tests that need a server of their own (another model, say)."""
    return serve


@pytest.fixture(scope="session")
def server(site_build, tmp_path_factory) -> Iterator[str]:
    with serve(site_build, tmp_path_factory.mktemp("server")) as url:
        yield url


def chromium_args(video: Path) -> list[str]:
    """Headless Chromium whose camera plays `video` (a Y4M file, looped)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does)")
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


@pytest.fixture(scope="session")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(media, playwright):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=chromium_args(media["video"])
    )
    try:
        yield browser
    finally:
        browser.close()


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["camera"], origin=server.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def console(page) -> Console:
    return Console(page)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
