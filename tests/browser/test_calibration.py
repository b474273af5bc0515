""" "Calibrate to my face" end to end in Chromium, against a server whose model reads faces as
Neutral (the shipped model with a card that shifts every answer toward Neutral, as a new
person's faint expressions are read): after calibrating on two faces whose expressions are
known, the page shows the true expression; no request carries anything of the calibration;
Reset brings back the model's own answer; Export and Import round-trip; "That's not right"
adds the last second."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from face_images import data_url, encode
from face_scenes import source
from tests.browser.a11y import AXE, axe_violations, layout_problems

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion.onnx"

# The camera: a canvas the test paints (getUserMedia replaced before the page loads), so the
# face in view can change between the calibration's steps. Everything after it is the real
# page: tracking.js, the crops, the server's answers.
FAKE_CAMERA = """
(() => {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 480;
  const ctx = canvas.getContext('2d');
  let face = null;
  window.__camera = {
    show(url) {
      const image = new Image();
      image.onload = () => { face = image; };
      image.src = url;
    },
  };
  const paint = () => {
    ctx.fillStyle = '#7f868c';
    ctx.fillRect(0, 0, 640, 480);
    if (face) ctx.drawImage(face, 320 - face.width / 2, 250 - face.height / 2);
  };
  setInterval(paint, 33);
  navigator.mediaDevices.getUserMedia = async () => canvas.captureStream(30);
})();
"""


def head(name: str, height: int) -> str:
    image = source(name).image.convert("RGB")
    width = round(image.width * height / image.height)
    return data_url(encode(image.resize((width, height))))


@pytest.fixture(scope="module")
def neutral_server(site_build, tmp_path_factory, serve_app):
    folder = tmp_path_factory.mktemp("reads-neutral")
    (folder / "emotion.onnx").symlink_to(MODEL)
    card = json.loads(MODEL.with_suffix(".json").read_text())
    # Less confident (a higher temperature) and shifted toward Neutral, away from Happiness.
    card["temperature"] = 2.0
    card["recalibration"] = {
        "id": "recal-test-neutral",
        "bias": {"Neutral": 3.0, "Happiness": -3.0},
    }
    (folder / "emotion.json").write_text(json.dumps(card))
    with serve_app(site_build, folder, EMOTION_MODEL=str(folder / "emotion.onnx")) as url:
        yield url


@pytest.fixture
def calibrating_page(browser, neutral_server):
    context = browser.new_context(viewport={"width": 1100, "height": 1000}, accept_downloads=True)
    context.grant_permissions(["camera"], origin=neutral_server.rstrip("/"))
    context.add_init_script(FAKE_CAMERA)
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def shown(page) -> str:
    return page.locator("#top-emotion").get_attribute("data-emotion") or ""


def wait_for_top(page, name: str) -> None:
    page.wait_for_function(
        "name => document.getElementById('top-emotion').dataset.emotion === name", arg=name
    )


def test_calibrate_to_my_face_shows_the_true_expression(
    calibrating_page, neutral_server, tmp_path, artifacts
):
    page = calibrating_page
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.url, r.post_data)))
    astronaut, cameraman = head("astronaut", 380), head("camera", 380)
    page.goto(neutral_server)
    page.wait_for_selector("body[data-ready=true]")
    # tracking.js finds the astronaut; the server's verified box then follows whoever is there.
    page.evaluate("url => window.__camera.show(url)", astronaut)
    page.click("#start")
    wait_for_top(page, "Neutral")  # the smiling astronaut, as this server reads her
    assert page.locator("#personal-state").get_attribute("data-state") == "none"

    # The guided flow: Neutral (the cameraman), Happiness (the astronaut), the rest skipped.
    page.evaluate("url => window.__camera.show(url)", cameraman)
    page.click("#calibrate-start")
    page.wait_for_selector("#calibration-step[data-label=Neutral]")
    assert page.locator("#calibration-flow").is_visible()
    assert axe_violations(page) == [] and layout_problems(page) == []  # the flow, accessible
    page.wait_for_selector("#calibration-step[data-label=Happiness]", timeout=30_000)
    page.evaluate("url => window.__camera.show(url)", astronaut)
    page.wait_for_selector("#calibration-step[data-label=Surprise]", timeout=30_000)
    for label in ("Surprise", "Sadness", "Anger", "Disgust", "Contempt", "Fear"):
        page.wait_for_selector(f"#calibration-step[data-label={label}]")
        page.click("#calibration-skip")
    page.wait_for_selector("#calibration-flow", state="hidden")
    summary = page.locator("#calibration-summary li")
    frames = {
        li.get_attribute("data-label"): int(li.get_attribute("data-frames")) for li in summary.all()
    }
    assert frames["Neutral"] >= 5 and frames["Happiness"] >= 5
    assert all(
        frames[c] == 0 for c in ("Surprise", "Sadness", "Anger", "Disgust", "Contempt", "Fear")
    )
    message = page.locator("#personal-message").inner_text()
    fit_ms = float(re.search(r"fitted in ([\d.]+) ms", message).group(1))
    flow_s = int(re.search(r"Done \((\d+) s", message).group(1))
    print(f"\ncalibration: flow {flow_s} s (6 expressions skipped), fit {fit_ms:.1f} ms")
    assert page.locator("#personal-state").get_attribute("data-state") == "calibrated"
    assert "Calibrated to you on" in page.locator("#personal-state").inner_text()

    wait_for_top(page, "Happiness")  # the astronaut, now read as she is
    page.screenshot(path=str(artifacts / "calibrated.png"))
    page.evaluate("url => window.__camera.show(url)", cameraman)
    wait_for_top(page, "Neutral")
    stored = json.loads(page.evaluate("() => localStorage.getItem('emotion.personal.v1')"))
    assert stored["calibration"]["counts"]["Happiness"] == frames["Happiness"]

    # Export, Reset (the model's own answer again), Import (calibrated again).
    with page.expect_download() as download:
        page.click("#personal-export")
    exported = tmp_path / "calibration.json"
    download.value.save_as(exported)
    assert json.loads(exported.read_text())["calibration"] == stored["calibration"]
    page.evaluate("url => window.__camera.show(url)", astronaut)
    page.click("#personal-reset")
    assert page.locator("#personal-state").get_attribute("data-state") == "none"
    assert page.evaluate("() => localStorage.getItem('emotion.personal.v1')") is None
    wait_for_top(page, "Neutral")
    page.set_input_files("#personal-import", str(exported))
    page.wait_for_selector("#personal-state[data-state=calibrated]")
    wait_for_top(page, "Happiness")

    # "That's not right": the last second of the face joins the calibration as what it was.
    before = len(
        json.loads(page.evaluate("() => localStorage.getItem('emotion.personal.v1')"))["samples"]
    )
    page.click("#not-right")
    assert page.locator("#not-right-picker").is_visible()
    assert axe_violations(page) == []
    page.click("#not-right-choices button[data-label=Happiness]")
    after = json.loads(page.evaluate("() => localStorage.getItem('emotion.personal.v1')"))
    assert len(after["samples"]) > before
    assert "refitted" in page.locator("#personal-message").inner_text()

    # Nothing of the calibration left the page: only the page's files, /health and face crops.
    for method, url, body in requests:
        path = url.removeprefix(neutral_server.rstrip("/"))
        if method == "POST":
            assert path == "/face", path
            assert list(parse_qs(body)) == ["imgBase64"]
        else:
            assert method == "GET" and "?" not in path, path  # nothing rides in a URL either
    sent = " ".join(body or "" for _, _, body in requests)
    assert "Happiness" not in sent and "bias" not in sent and "samples" not in sent
