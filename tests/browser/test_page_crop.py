"""The server-mode crop (site/js/faces.js FaceCropper) in real Chromium: pure colours crop to
the grey Pillow's convert("L") gives (what the model was trained on), and the JPEG the page
sends decodes on the server to that grey."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (200, 100, 50), (30, 60, 220)]

CROP = """async (colours) => {
  const { FaceCropper, CROP_SIZE } = await import('./js/faces.js');
  const cropper = new FaceCropper();
  const source = document.createElement('canvas');
  source.width = 320;
  source.height = 240;
  const context = source.getContext('2d');
  const square = { x: 40, y: 20, width: 200, height: 200 };
  const out = [];
  for (const [r, g, b] of colours) {
    context.fillStyle = `rgb(${r}, ${g}, ${b})`;
    context.fillRect(0, 0, source.width, source.height);
    const crop = cropper.crop(source, square);
    const pixels = crop.getContext('2d').getImageData(0, 0, crop.width, crop.height).data;
    const centre = 4 * (crop.width * (crop.height >> 1) + (crop.width >> 1));
    out.push({ size: [crop.width, crop.height, CROP_SIZE],
               grey: [pixels[0], pixels[1], pixels[2], pixels[centre]],
               jpeg: cropper.dataUrl(source, square) });
  }
  return out;
}"""


def pillow_grey(colour: tuple[int, int, int]) -> int:
    return Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))


def test_a_pure_colour_crops_to_pillows_grey(page, server):
    page.goto(server)
    crops = page.evaluate(CROP, COLOURS)
    for colour, crop in zip(COLOURS, crops, strict=True):
        grey = pillow_grey(colour)
        width, height, size = crop["size"]
        assert width == height == size
        # R, G and B all carry the grey; exact for the pure primaries, within rounding else.
        tolerance = 0 if colour.count(0) == 2 or len(set(colour)) == 1 else 1
        for value in crop["grey"]:
            assert abs(value - grey) <= tolerance, (colour, crop["grey"], grey)
        raw = base64.b64decode(crop["jpeg"].split(",", 1)[1])
        sent = Image.open(io.BytesIO(raw))
        assert sent.size == (size, size)
        centre = sent.convert("L").getpixel((size // 2, size // 2))
        assert abs(centre - grey) <= 2, (colour, centre, grey)  # JPEG rounding
    # Not vacuous: the primaries give three clearly different greys (a swap would show).
    assert len({pillow_grey(c) for c in COLOURS[:3]}) == 3


# The live view: each face it analyses (Analyser.classify, on the server or on this device) with
# the followed box it was cut around (the last Track whose `due` said yes: live.js asks it, then
# crops at once), recorded through the classes' prototypes, which the page's instances use.
LIVE_SPY = """async () => {
  const { Analyser } = await import('./js/ondevice.js');
  const { Track } = await import('./js/tracks.js');
  window.__sent = [];
  let box = null;
  const due = Track.prototype.due;
  Track.prototype.due = function (...args) {
    const yes = due.apply(this, args);
    if (yes) box = { ...this.box };
    return yes;
  };
  const classify = Analyser.prototype.classify;
  Analyser.prototype.classify = function (source, square, options) {
    window.__sent.push({ square: { ...square }, box });
    return classify.call(this, source, square, options);
  };
}"""
# The page and sentence that give each mode's margin.
MARGINS = {
    "server": ("docs/live-view.md", r"goes out as a \d+ px crop with a (\d+)% margin"),
    "device": ("docs/on-device.md", r"The live view's crops \((\d+)% margin, as for the server\)"),
}


@pytest.mark.parametrize("mode", list(MARGINS))
def test_the_live_crop_around_a_face_has_the_documented_margin(page, server, mode):
    page_path, pattern = MARGINS[mode]
    text = " ".join((ROOT / page_path).read_text().split())
    (margin,) = re.findall(pattern, text)
    page.goto(server)
    if mode == "device":
        page.get_by_label("Analyse on this device").check()
        page.wait_for_function(
            "() => ['ready', 'failed'].includes(document.getElementById('analyse-status').dataset.state)",
            timeout=120_000,
        )
        status = page.locator("#analyse-status")
        assert status.get_attribute("data-state") == "ready", status.text_content()
    page.evaluate(LIVE_SPY)
    page.get_by_role("button", name="Start camera").click()
    page.wait_for_function("() => window.__sent.length >= 3", timeout=45_000)
    sent = page.evaluate("() => window.__sent")
    for crop in sent:
        square, box = crop["square"], crop["box"]
        assert box, "a crop went out for no followed box"
        assert square["width"] < 480, "clamped by the frame: the margin cannot show"
        # The face's box fills 1 / (1 + 2 x margin) of the crop's side: two thirds at 25%.
        side = max(box["width"], box["height"])
        assert square["width"] / side == pytest.approx(1 + 2 * int(margin) / 100), crop
