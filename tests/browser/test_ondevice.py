"""On-device mode: the device's model file in onnxruntime-web, in a worker of real Chromium.

- the page's JavaScript preprocessing is Pillow's, bit for bit (node, many sizes);
- the browser path and the Python service give the same answers on the same images;
- the live view and the photo upload send nothing, and keep working with the network cut;
- the choice is remembered, the server is the default, and a warm cache starts fast.
Measured figures go to artifacts/ondevice.json.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from emotion.card import ModelCard
from emotion.decode import decode_image
from emotion.model import EmotionModel, ranked
from emotion.preprocess import to_input
from emotion.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "emotion-student.onnx"  # the page's on-device classifier
PROBES = 200  # top-1 agreement >= 99.5%: at most one disagreement
MEASURE_SECONDS = 4.0


# --- images --------------------------------------------------------------------------------
def _sources() -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.camera(),
            data.immunohistochemistry(), data.coins()]  # fmt: skip


def probe_images(count: int, seed: int = 12) -> list[Image.Image]:
    """Crops of scikit-image's photos, many around the astronaut's face: any size from 24 to
    320 px, any aspect, mirrored, lighter or darker, colour or grayscale."""
    rng = np.random.default_rng(seed)
    sources = [Image.fromarray(a) for a in _sources()]
    images = []
    for i in range(count):
        source = sources[0] if i % 2 == 0 else sources[int(rng.integers(len(sources)))]
        w = int(rng.integers(24, 321))
        h = int(np.clip(w * rng.uniform(0.75, 1.33), 24, None))
        w, h = min(w, source.width), min(h, source.height)
        if i % 2 == 0:  # the astronaut's face, more or less centred
            x = int(np.clip(222 - w / 2 + rng.normal(0, 20), 0, source.width - w))
            y = int(np.clip(115 - h / 2 + rng.normal(0, 20), 0, source.height - h))
        else:
            x = int(rng.integers(0, source.width - w + 1))
            y = int(rng.integers(0, source.height - h + 1))
        image = source.crop((x, y, x + w, y + h))
        if rng.random() < 0.3:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < 0.3:
            gain = rng.uniform(0.6, 1.4)
            image = image.point(lambda v, g=gain: min(255, int(v * g)))
        if rng.random() < 0.2:
            image = image.convert("L")
        images.append(image)
    return images


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def record(artifacts: Path, **figures) -> None:
    path = artifacts / "ondevice.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**known, **figures}, indent=2) + "\n")


# --- the page's preprocessing against Pillow -----------------------------------------------
NODE_CHECK = """
import { toInput } from %s;
let raw = '';
for await (const chunk of process.stdin) raw += chunk;
const card = JSON.parse(process.argv[2]);
const out = JSON.parse(raw).map(({ w, h, rgba }) =>
  Buffer.from(toInput(Buffer.from(rgba, 'base64'), w, h, card).buffer).toString('base64'));
process.stdout.write(JSON.stringify(out));
"""


def test_preprocessing_is_pillows_bit_for_bit(tmp_path):
    node = shutil.which("node")
    assert node, "node is missing (npm needs it too)"
    card = ModelCard.read(MODEL.with_suffix(".json"))
    images = probe_images(60, seed=3)
    images += [Image.new("RGB", (s, s), (s % 256, 40, 200)) for s in (8, 63, 64, 65, 1000)]
    script = tmp_path / "check.mjs"
    script.write_text(NODE_CHECK % json.dumps((ROOT / "site/js/preprocess.js").as_uri()))
    cases = [
        {"w": im.width, "h": im.height,
         "rgba": base64.b64encode(np.asarray(im.convert("RGBA")).tobytes()).decode()}
        for im in images
    ]  # fmt: skip
    fields = {k: getattr(card, k) for k in ("input_size", "color_mode", "mean", "std", "resize")}
    done = subprocess.run(
        [node, str(script), json.dumps(fields)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
    )
    side = card.input_size
    for image, encoded in zip(images, json.loads(done.stdout), strict=True):
        js = np.frombuffer(base64.b64decode(encoded), dtype=np.float32).reshape(1, 1, side, side)
        py = to_input([image], card)
        assert np.array_equal(js, py), f"{image.size} {image.mode}: {np.abs(js - py).max()}"


# --- the browser path against the Python service -------------------------------------------
@pytest.fixture(scope="module")
def model_service():
    """The service's own decoding, preprocessing and ONNX Runtime session on the same model:
    what /face does with a crop in which its face check finds nothing to reframe. (When it
    finds a face it first re-crops around it, emotion.framing; the page does the same with the
    same detector, compared in test_device_detector.py; here the crop is read as it is.)"""
    settings = Settings.from_env()
    model = EmotionModel(MODEL, settings.threads)

    def classify(data: bytes) -> dict[str, float]:
        image = decode_image(data, settings.max_pixels, settings.min_side)
        return ranked(model.predict([image])[0], model.card.classes)

    return classify


CLASSIFY_ALL = """async ([images, classes]) => {
  const { Analyser } = await import('./js/ondevice.js');
  const analyser = window.__probe || (window.__probe = new Analyser({}));
  analyser.setMode('device');
  await analyser.load();
  const out = [];
  for (const b64 of images) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
      { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
    const region = { x: 0, y: 0, width: bitmap.width, height: bitmap.height };
    const { predictions } = await analyser.classify(bitmap, region,
      { sourceWidth: bitmap.width, sourceHeight: bitmap.height, check: false });
    out.push(classes.map((c) => predictions[c]));
  }
  return out;
}"""


# About a minute on an idle 2-core machine; 200 WebAssembly inferences can take far longer
# when the machine is busy (over 10 min under a load average of 20).
@pytest.mark.timeout(1800)
def test_browser_and_service_agree(page, console, server, model_service, artifacts):
    card = ModelCard.read(MODEL.with_suffix(".json"))
    classes = list(card.classes)
    images = [png(im) for im in probe_images(PROBES)]
    served = []
    for data in images:
        predictions = model_service(data)
        served.append([predictions[c] for c in classes])
    page.goto(server)
    started = time.perf_counter()
    browser = []
    for start in range(0, len(images), 40):
        chunk = [base64.b64encode(d).decode() for d in images[start : start + 40]]
        browser += page.evaluate(CLASSIFY_ALL, [chunk, classes])
    seconds = time.perf_counter() - started
    served, browser = np.array(served), np.array(browser)
    agreement = float((served.argmax(1) == browser.argmax(1)).mean())
    worst = float(np.abs(served - browser).max())
    record(artifacts, parity={"images": len(images), "top1_agreement": agreement,
                              "max_abs_prob_diff": worst,
                              "browser_ms_per_image": seconds * 1000 / len(images)})  # fmt: skip
    print(f"\nbrowser vs service: {agreement:.2%} top-1 agreement, max |dp| {worst:.2e}")
    assert agreement >= 0.995
    assert worst <= 0.02
    assert len(set(served.argmax(1))) >= 3, "the probes should not all look alike"
    assert not console.errors, console.errors


# --- the page in on-device mode ------------------------------------------------------------
def api_requests(page) -> list[str]:
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            r.url.split("?")[0].rstrip("/").endswith(("/face", "/faces")) and sent.append(r.url)
        ),
    )
    return sent


def choose_device(page) -> None:
    """On-device mode, once its model is ready; a model that fails to load (wrong input size,
    say) fails here as soon as the page says so, with the page's words, not after the wait."""
    page.get_by_label("Analyse on this device").check()
    page.wait_for_function(
        "() => ['ready', 'failed'].includes(document.getElementById('analyse-status').dataset.state)",
        timeout=120_000,
    )
    status = page.locator("#analyse-status")
    assert status.get_attribute("data-state") == "ready", status.text_content()


def bar_updates(page) -> int:
    return int(page.get_attribute("#bars", "data-updates") or 0)


def test_server_is_the_default_and_the_choice_is_remembered(page, server):
    page.goto(server)
    assert page.get_by_label("Analyse on the server").is_checked()
    assert not page.get_by_label("Analyse on this device").is_checked()
    choose_device(page)
    assert "on this device" in page.text_content("#privacy")
    assert page.locator('[data-analyse-note="device"]').is_visible()
    assert not page.locator('[data-analyse-note="server"]').is_visible()
    page.reload()
    assert page.get_by_label("Analyse on this device").is_checked()
    page.get_by_label("Analyse on the server").check()
    page.reload()
    assert page.get_by_label("Analyse on the server").is_checked()


def test_live_view_on_device_sends_nothing_and_survives_offline(page, console, server, artifacts):
    sent = api_requests(page)
    page.goto(server)
    started = time.perf_counter()
    choose_device(page)
    cold_load = time.perf_counter() - started
    assert "downloaded once" in page.text_content("#analyse-status")

    # A later visit: the model comes from Cache Storage; Start right away.
    page.reload()
    assert page.get_by_label("Analyse on this device").is_checked()
    clicked = time.perf_counter()
    page.click("#start")
    page.wait_for_function("() => Number(document.getElementById('bars').dataset.updates) > 0",
                           timeout=30_000)  # fmt: skip
    first_prediction = time.perf_counter() - clicked
    assert "cache" in page.text_content("#analyse-status")
    # The astronaut smiles: the model reads her as Happiness on the device too, not any class.
    expect(page.locator("#top-emotion")).to_have_attribute("data-emotion", "Happiness")

    count = lambda: int(page.get_attribute("#rate", "data-count") or 0)  # noqa: E731
    page.wait_for_timeout(1000)
    before, t0 = count(), time.perf_counter()
    page.wait_for_timeout(MEASURE_SECONDS * 1000)
    rate = (count() - before) / (time.perf_counter() - t0)

    # Cut the network: the page goes on predicting.
    page.context.set_offline(True)
    page.route("**/*", lambda route: route.abort())
    offline_from = bar_updates(page)
    page.wait_for_timeout(2000)
    offline_updates = bar_updates(page) - offline_from
    shown_rate = float(page.get_attribute("#rate", "data-value"))
    page.screenshot(path=str(artifacts / "browser-ondevice.png"), full_page=True)
    record(artifacts, live={
        "predictions_per_second": round(rate, 2),
        "predictions_per_second_shown_by_page": shown_rate,
        "first_prediction_s_after_start_warm_cache": round(first_prediction, 2),
        "cold_model_load_s": round(cold_load, 2),
        "bar_updates_in_2_s_offline": offline_updates,
        "face_requests": len(sent),
        "wasm_threads": int(page.get_attribute("#analyse-status", "data-threads") or 0),
    })  # fmt: skip
    print(f"\non-device live: {rate:.1f} predictions/s, first prediction "
          f"{first_prediction:.2f} s after Start (warm cache), cold load {cold_load:.1f} s")  # fmt: skip
    assert sent == [], f"on-device mode sent {sent}"
    assert offline_updates >= 2, "predictions stopped when the network was cut"
    assert not page.locator("#analyse-status.warning").count()
    # The first prediction (target <= 5 s after Start, warm cache) and the rate (target 15/s;
    # 20.5/s measured on an idle machine, 2026-11-29, with the weight-only int8 model and its
    # mirror TTA) are benchmark figures: artifacts/ondevice.json, reported by `make bench` beside
    # their targets. Here a floor only a stalled or one-shot pipeline misses, whatever the
    # machine's load (2.0/s was measured at a load average of 17 on 2 cores); the first
    # prediction is bounded by the 30 s wait above. Since issue 22 each crop is also checked
    # by the detector first (worker time per crop +12% on a busy machine: make bench's
    # bench.ondevice_live measures the live rate with the check on).
    assert rate >= 1, f"{rate:.1f} predictions/s on this device: the live loop stalled"
    assert not [e for e in console.errors if "ERR_INTERNET_DISCONNECTED" not in e], console.errors


def test_several_faces_on_device(playwright, server, tmp_path):
    """Two people in view: each gets its own on-device result, and nothing is sent."""
    from tests.browser.scenes import SCENES
    from tests.browser.test_scenes import _camera_on

    scene = SCENES["man-and-woman"]
    with _camera_on(playwright, server, scene, tmp_path) as page:
        sent = api_requests(page)
        page.goto(server)
        choose_device(page)
        page.click("#start")
        page.wait_for_function(
            """n => JSON.parse(document.getElementById('overlay').dataset.faces || '[]')
                .filter((f) => f.top).length >= n""",
            arg=len(scene.people),
            timeout=60_000,
        )
        assert sent == [], f"on-device mode sent {sent}"


def test_photo_upload_on_device_sends_nothing(page, console, server, media):
    sent = api_requests(page)
    page.goto(server)
    choose_device(page)
    page.set_input_files("#file", str(media["photo"]))
    page.wait_for_selector(".face-result", timeout=30_000)
    heading = page.text_content(".face-result h3")
    assert any(c in heading for c in ModelCard.read(MODEL.with_suffix(".json")).classes)
    assert sent == [], f"on-device upload sent {sent}"
    assert not console.errors, console.errors


def test_page_headers_allow_wasm_and_nothing_inline(server):
    import httpx

    page = httpx.get(server)
    csp = page.headers["content-security-policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src")).split()
    assert "'wasm-unsafe-eval'" in script_src
    assert "'unsafe-eval'" not in script_src and "'unsafe-inline'" not in script_src
    # Threads in onnxruntime-web need SharedArrayBuffer, i.e. a cross-origin-isolated page.
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert page.headers["cross-origin-embedder-policy"] == "require-corp"
    manifest = httpx.get(server + "models/compact.json").json()
    model = httpx.get(server + "models/" + manifest["file"])
    assert model.status_code == 200 and len(model.content) == manifest["bytes"]
    assert manifest["file"].startswith(f"{MODEL.stem}.") and manifest["bytes"] <= 6_000_000
    for name in ("input_size", "color_mode", "mean", "std", "resize", "temperature", "classes"):
        assert name in manifest
