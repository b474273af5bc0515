""" "What the model saw": the page's picture of the classifier's input is the service's own
preprocessing of the same crop, pixel for pixel (server mode: the crop the page sent, re-framed
as /face's `region` says; on this device: the frame's pixels the page gave the on-device model,
checked and re-framed by the page's copy of the same detector, as /face does).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from emotion.card import ModelCard
from emotion.decode import decode_image
from emotion.detect import FaceDetector
from emotion.framing import Framing, crop_region, refine_crop
from emotion.preprocess import to_input, to_model_image
from emotion.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIRST_FACE_MS = 45_000  # a wait on a busy machine, not a target

# Every canvas of the view, read in one go (so all come from the same answer).
READ_VIEW = """() => {
    const read = (id) => {
        const c = document.getElementById(id);
        if (!c.width || !c.height) return null;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return { width: c.width, height: c.height, rgba: Array.from(d) };
    };
    return { input: read('seen-input'), zoom: read('seen-zoom'), sent: read('seen-sent'),
             note: document.getElementById('seen-note').textContent };
}"""


NODE_CHECK = """
import { modelInput } from %s;
let raw = '';
for await (const chunk of process.stdin) raw += chunk;
const out = JSON.parse(raw).map(({ w, h, gray, region, side }) => Buffer.from(
  modelInput(Buffer.from(gray, 'base64'), w, h, region, side).pixels).toString('base64'));
process.stdout.write(JSON.stringify(out));
"""


def test_regions_past_the_crops_edges_repeat_its_edge_pixels_as_the_server_does(tmp_path):
    """seen.js's cut + preprocessing against framing.crop_region + to_model_image (node, no
    browser): regions inside the crop, past each edge, wholly outside it, not square."""
    node = shutil.which("node")
    assert node, "node is missing (npm needs it too)"
    card = ModelCard.read(Settings.from_env().model_path.with_suffix(".json"))
    rng = np.random.default_rng(5)
    crop = Image.fromarray(rng.integers(0, 256, (96, 96), dtype=np.uint8), "L")
    regions = [(26, 32, 47, 47), (-10, -5, 60, 60), (50, 60, 70, 70), (-20, 10, 140, 140),
               (100, 100, 20, 20), (-30, -30, 10, 10), (5, 5, 40, 64), (0, 0, 96, 96), (0, 0, 1, 1), (-30, 10, 10, 20), (20, 100, 30, 8)]  # fmt: skip
    cases = [
        {"w": 96, "h": 96, "gray": base64.b64encode(crop.tobytes()).decode(),
         "region": {"x": x, "y": y, "width": w, "height": h}, "side": card.input_size}
        for x, y, w, h in regions
    ]  # fmt: skip
    script = tmp_path / "check.mjs"
    script.write_text(NODE_CHECK % json.dumps((ROOT / "site/js/seen.js").as_uri()))
    done = subprocess.run(
        [node, str(script)], input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    side = card.input_size
    for (x, y, w, h), encoded in zip(regions, json.loads(done.stdout), strict=True):
        js = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(side, side)
        py = np.asarray(to_model_image(crop_region(crop, (x, y, x + w, y + h)), card))
        assert np.array_equal(js, py), f"region {(x, y, w, h)}: {int((js != py).sum())} differ"


def pixels(canvas: dict) -> np.ndarray:
    return np.array(canvas["rgba"], dtype=np.uint8).reshape(canvas["height"], canvas["width"], 4)


def gray(canvas: dict) -> np.ndarray:
    rgba = pixels(canvas)
    assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 0] == rgba[..., 2]).all()
    assert (rgba[..., 3] == 255).all()
    return rgba[..., 0]


def sent_crops(page) -> list[bytes]:
    """The image bytes of every /face request the page makes."""
    crops: list[bytes] = []

    def on_request(request):
        if request.method == "POST" and request.url.rstrip("/").endswith("/face"):
            data_url = parse_qs(request.post_data or "")["imgBase64"][0]
            crops.append(base64.b64decode(data_url.split(",", 1)[1]))

    page.on("request", on_request)
    return crops


def open_view(page) -> None:
    toggle = page.get_by_role("button", name="What the model saw")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#seen")).to_be_visible()


def test_the_view_is_the_servers_input_pixel_for_pixel(page, console, server):
    settings = Settings.from_env()
    card = ModelCard.read(settings.model_path.with_suffix(".json"))
    framing = Framing.from_card(card.details)
    detector = FaceDetector(settings.detector_path, 1)
    crops = sent_crops(page)
    page.goto(server)
    open_view(page)
    expect(page.locator("#seen-note")).to_have_text(re.compile("Start the camera"))
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
    expect(page.locator("#seen")).to_have_attribute("data-state", "shown", timeout=20_000)
    view = page.evaluate(READ_VIEW)
    assert "found the face" in view["note"], view["note"]
    shown_crop = gray(view["sent"])
    side = card.input_size
    assert (view["input"]["width"], view["input"]["height"]) == (side, side)
    assert view["zoom"]["rgba"] == view["input"]["rgba"]  # enlarged by CSS only

    # The request whose crop the view shows, decoded as the service decodes it.
    limits = (settings.max_pixels, settings.min_side)
    images = [decode_image(data, *limits) for data in crops]
    same = [im for im in images if np.array_equal(np.asarray(im.convert("L")), shown_crop)]
    assert same, f"the view's crop is none of the {len(crops)} crops the page sent"
    image = same[-1]

    # The service's own steps for that crop: its detector, its framing, its preprocessing.
    face = detector.find_in_crop(image, settings.crop_detect_side)
    assert face is not None
    expected = np.asarray(to_model_image(refine_crop(image, face, framing), card))
    shown = gray(view["input"])
    assert np.array_equal(shown, expected), f"{int((shown != expected).sum())} pixels differ"
    # And normalised as the model gets it: the very same float32 input.
    model_input = to_input([refine_crop(image, face, framing)], card)[0, 0]
    normalised = (shown.astype(np.float32) / np.float32(255) - np.float32(card.mean)) / np.float32(card.std)  # fmt: skip
    assert np.array_equal(normalised, model_input)
    assert not console.errors, console.errors

    # Hidden again, or the camera stopped: nothing is kept.
    page.get_by_role("button", name="Stop camera").click()
    expect(page.locator("#seen")).to_have_attribute("data-state", "empty")
    assert page.evaluate(READ_VIEW)["input"] is None


def test_the_view_is_the_device_models_input_pixel_for_pixel(page, console, server):
    card = ModelCard.read(ROOT / "models" / "emotion-student.json")
    page.goto(server)
    page.get_by_label("Analyse on this device").check()
    page.wait_for_function(
        "() => document.getElementById('analyse-status').dataset.state === 'ready'",
        timeout=120_000,
    )
    open_view(page)
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
    expect(page.locator("#seen")).to_have_attribute("data-state", "shown", timeout=20_000)
    view = page.evaluate(READ_VIEW)
    assert "On this device: the detector found the face" in view["note"], view["note"]
    region = Image.fromarray(pixels(view["sent"]), "RGBA")
    # The service's steps for the same pixels (decode.py: transparency over white), with the
    # model's card: /face's check, its framing, its preprocessing.
    rgb = Image.alpha_composite(Image.new("RGBA", region.size, "white"), region).convert("RGB")
    face = FaceDetector(ROOT / "models" / "face-detector.onnx").find_in_crop(rgb)
    assert face is not None
    framing = Framing.from_card(card.details)
    expected = np.asarray(to_model_image(refine_crop(rgb, face, framing), card))
    shown = gray(view["input"])
    assert shown.shape == (card.input_size, card.input_size)
    assert np.array_equal(shown, expected), f"{int((shown != expected).sum())} pixels differ"
    assert not console.errors, console.errors
