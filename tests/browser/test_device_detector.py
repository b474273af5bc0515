"""The server's face detector in the page (on-device mode): site/js/retinaface.js, framing.js
and detector.js against emotion.detect and emotion.framing. One card, two implementations:

- node: the same pixels give the network the same input, bit for bit (shrink, enlarge, pad);
  the same network outputs give the same faces (anchors, box decoding, suppression); the same
  box gives the same classifier crop (framing); the page's defaults are the service's;
- Chromium: on generated group photos (tests/face_scenes.py) and scikit-image's photos the page
  finds the faces POST /faces finds (same count, IoU >= 0.9, scores within 0.02) and none
  where it finds none; its crop check agrees with /face's; a group photo uploaded in on-device
  mode gets one card per person with no request made; EXIF orientation is applied as the
  server applies it; a photo without a face and a file that is not an image are said plainly.
Measured figures go to artifacts/ondevice-detector.json.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from skimage import data as skdata

from emotion import app as service
from emotion.decode import decode_image
from emotion.detect import (
    Detection,
    DetectorCard,
    anchors,
    decode,
    detect_faces,
    face_in_crop,
    shipped_detector,
    shrink,
    suppress,
)
from emotion.framing import Framing, pixel_box
from emotion.settings import Settings
from face_scenes import GROUP, NON_FACE_PHOTOS, TRIO, compose, group_photo, trio_photo
from tests.browser.test_ondevice import api_requests, choose_device, record

ROOT = Path(__file__).resolve().parents[2]
DETECTOR_CARD = ROOT / "models" / "face-detector.json"
CARD = ROOT / "models" / "emotion-student.json"  # the page's on-device classifier
MIN_IOU = 0.9
MAX_SCORE_DIFF = 0.02


def _node(script: str, payload, tmp_path: Path):
    node = shutil.which("node")
    assert node, "node is missing (npm needs it too)"
    path = tmp_path / "check.mjs"
    path.write_text(script.replace("SITE/", (ROOT / "site" / "js").as_uri() + "/"))
    done = subprocess.run(
        [node, str(path)], input=json.dumps(payload), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _rgba(image: Image.Image) -> str:
    return base64.b64encode(np.asarray(image.convert("RGBA")).tobytes()).decode()


def _floats(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, np.float32).tobytes()).decode()


def _card() -> dict:
    return json.loads(DETECTOR_CARD.read_text())


# --- node: the pure modules against Python -------------------------------------------------
INPUT_JS = """
import { toRgb, detectionImage, toInput } from 'SITE/retinaface.js';
let raw = '';
for await (const chunk of process.stdin) raw += chunk;
const { card, cases } = JSON.parse(raw);
process.stdout.write(JSON.stringify(cases.map(({ w, h, rgba, side, upscale }) => {
  const rgb = toRgb(Buffer.from(rgba, 'base64'), w, h);
  const { image, scale } = detectionImage(rgb, side, upscale);
  const input = toInput(image, card);
  return { dims: input.dims, scale, data: Buffer.from(input.data.buffer).toString('base64') };
})));
"""


def _python_input(image: Image.Image, side: int, upscale: bool) -> np.ndarray:
    """What FaceDetector.detect gives the network (its resize, then _input)."""
    scale = side / max(image.size)
    if not upscale:
        scale = min(1.0, scale)
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = shrink(image, size) if scale < 1 else image.resize(size, Image.Resampling.BILINEAR)
    return shipped_detector()._input(image)


def test_the_network_gets_the_same_input_bit_for_bit(tmp_path):
    rng = np.random.default_rng(7)
    astronaut = Image.fromarray(skdata.astronaut())
    cases = [  # (width, height, side, upscale): every path of detect()'s resize
        (512, 512, 1024, False),  # as it is (padded only)
        (1280, 720, 1024, False),  # nearest-neighbour only
        (4000, 3000, 1024, False),  # box average by 3, then nearest
        (3001, 1999, 1024, False),  # by 2, partial boxes at the edges
        (2048, 1536, 1024, False),  # by 2 exactly
        (96, 96, 160, True),  # a page crop brought up to the check's side
        (333, 321, 160, True),  # a larger crop brought down
        (97, 101, 160, True),
    ]
    images = []
    for w, h, side, upscale in cases:
        noise = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        images.append((astronaut.resize((w, h)) if w < 600 else noise, side, upscale))
    payload = {
        "card": _card(),
        "cases": [
            {"w": im.width, "h": im.height, "rgba": _rgba(im), "side": side, "upscale": up}
            for im, side, up in images
        ],
    }
    for (image, side, upscale), out in zip(images, _node(INPUT_JS, payload, tmp_path), strict=True):
        js = np.frombuffer(base64.b64decode(out["data"]), np.float32).reshape(out["dims"])
        py = _python_input(image, side, upscale)
        assert js.shape == py.shape, (image.size, side)
        assert np.array_equal(js, py), f"{image.size} at {side}: {np.abs(js - py).max()}"


DECODE_JS = """
import { decode } from 'SITE/retinaface.js';
let raw = '';
for await (const chunk of process.stdin) raw += chunk;
const { card, cases } = JSON.parse(raw);
const f32 = (b64) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
process.stdout.write(JSON.stringify(cases.map(({ loc, conf, landmarks, width, height }) =>
  decode(f32(loc), f32(conf), f32(landmarks), width, height, card))));
"""


def _python_decode(outputs, width: int, height: int, card: DetectorCard, threshold: float):
    """detect()'s steps after the network, on given outputs."""
    loc, conf, landmarks = outputs
    scores = conf[0, :, 1]
    candidates = np.flatnonzero(scores > threshold)
    priors = anchors(width, height, card.strides, card.anchor_sizes, card.variances)[candidates]
    boxes, points = decode(loc[0][candidates], landmarks[0][candidates], priors)
    return suppress(boxes, scores[candidates], points, threshold, card.nms_iou)


@pytest.mark.parametrize("threshold", [0.5, 0.02])  # the card's; a low one: many boxes to suppress
def test_the_same_outputs_give_the_same_faces(tmp_path, threshold):
    detector = shipped_detector()
    card = _card()
    card["thresholds"] = {**card["thresholds"], "score": threshold}
    photos = [group_photo()[0], trio_photo()[0], Image.fromarray(skdata.astronaut()),
              Image.fromarray(skdata.coffee())]  # fmt: skip
    cases, expected = [], []
    for photo in photos:
        batch = _python_input(photo, 1024, False)
        outputs = detector.session.run(None, {"input": batch})
        height, width = batch.shape[2:]
        expected.append(_python_decode(outputs, width, height, detector.card, threshold))
        loc, conf, landmarks = (_floats(o) for o in outputs)
        cases.append({"loc": loc, "conf": conf, "landmarks": landmarks,
                      "width": width, "height": height})  # fmt: skip
    got = _node(DECODE_JS, {"card": card, "cases": cases}, tmp_path)
    total = 0
    for py_faces, js_faces in zip(expected, got, strict=True):
        assert len(js_faces) == len(py_faces)
        total += len(py_faces)
        for py, js in zip(py_faces, js_faces, strict=True):
            assert js["score"] == pytest.approx(py.score, abs=1e-7)
            for key in ("x", "y", "width", "height"):
                assert js[key] == pytest.approx(getattr(py, key), abs=1e-3)
            assert np.allclose(js["landmarks"], py.landmarks, atol=1e-3)
    assert total >= (12 if threshold == 0.5 else 20)  # the photos' 12 faces; more boxes when low


FRAMING_JS = """
import { cropRegion, framingOf, keeps, pixelBox, region } from 'SITE/framing.js';
let raw = '';
for await (const chunk of process.stdin) raw += chunk;
const { card, w, h, rgba, faces } = JSON.parse(raw);
const pixels = Buffer.from(rgba, 'base64');
const framing = framingOf(card);
process.stdout.write(JSON.stringify(faces.map((face) => {
  const r = region(face, framing);
  const crop = cropRegion(pixels, w, h, r);
  return { region: r, pixels: pixelBox(r), keeps: keeps(face, w, h, framing),
           w: crop.width, h: crop.height, rgba: Buffer.from(crop.data.buffer).toString('base64') };
})));
"""


# The model's card (what the page reads, and /face), whose framing has /face's `as_sent`
# rule, and the same card without that rule.
@pytest.mark.parametrize("as_sent", [True, False])
def test_the_same_box_gives_the_same_classifier_crop(tmp_path, as_sent):
    card = json.loads(CARD.read_text())
    if not as_sent:
        card["framing"].pop("as_sent")
    framing = Framing.from_card(card)
    image = Image.fromarray(skdata.astronaut()).resize((300, 200))
    rng = np.random.default_rng(5)
    faces = [Detection(170.4, 40.5, 60.2, 75.5, 0.9), Detection(-20, -10, 80, 90, 0.9),
             Detection(250.5, 150.5, 90, 70, 0.9), Detection(400, 300, 50, 50, 0.9),
             Detection(30, 5, 250, 190, 0.9), Detection(30, 5, 240, 190, 0.9)]  # fmt: skip
    faces += [
        Detection(*rng.uniform(-40, 260, 2), *rng.uniform(10, 150, 2), score=0.9) for _ in range(30)
    ]
    payload = {"card": card, "w": image.width, "h": image.height, "rgba": _rgba(image),
               "faces": [dataclasses.asdict(f) for f in faces]}  # fmt: skip
    kept = 0
    for face, out in zip(faces, _node(FRAMING_JS, payload, tmp_path), strict=True):
        assert out["region"] == pytest.approx(list(framing.region(face)), abs=1e-9)
        assert tuple(out["pixels"]) == pixel_box(framing.region(face))
        assert out["keeps"] == framing.keeps(image, face)
        kept += out["keeps"]
        py = np.asarray(framing.crop(image, face).convert("RGBA"))
        js = np.frombuffer(base64.b64decode(out["rgba"]), np.uint8).reshape(out["h"], out["w"], 4)
        assert js.shape == py.shape and np.array_equal(js, py), face
    # Only a card with the rule keeps some crops as sent (the boxes include ones that fill it).
    assert (kept > 0) == (framing.as_sent_fill is not None)


def test_the_page_uses_the_services_defaults(tmp_path):
    script = """import { SERVICE } from 'SITE/retinaface.js';
process.stdout.write(JSON.stringify(SERVICE));"""
    page = _node(script, None, tmp_path)
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert page == {
        "photoSide": fields["detect_side"],
        "minSize": service.MIN_SIZE,
        "maxFaces": service.MAX_FACES,
        "cropSide": fields["crop_detect_side"],
    }


# --- Chromium: the page's detector against the service's -----------------------------------
FIND_ALL = """async (images) => {
  const { Analyser } = await import('./js/ondevice.js');
  const analyser = window.__probe || (window.__probe = new Analyser({}));
  analyser.setMode('device');
  await analyser.load();
  const out = [];
  for (const [b64, type] of images) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    out.push(await analyser.findFaces(new Blob([bytes], { type })));
  }
  return out;
}"""

CHECK_ALL = """async (images) => {
  const { Analyser } = await import('./js/ondevice.js');
  const analyser = window.__probe || (window.__probe = new Analyser({}));
  analyser.setMode('device');
  await analyser.load();
  const out = [];
  for (const b64 of images) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
      { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
    const square = { x: 0, y: 0, width: bitmap.width, height: bitmap.height };
    const { face, cropSize } = await analyser.classify(bitmap, square,
      { sourceWidth: bitmap.width, sourceHeight: bitmap.height });
    out.push({ face, cropSize });
  }
  return out;
}"""


def _encode(image: Image.Image, kind: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def _photos() -> dict[str, tuple[bytes, str]]:
    """Named test photos as files (bytes, media type)."""
    group, trio = group_photo()[0], trio_photo()[0]
    photos = {
        "group": group,
        "trio": trio,
        "group-2560x1440": group.resize((2560, 1440), Image.Resampling.BICUBIC),
        "trio-3000x1688": trio.resize((3000, 1688), Image.Resampling.BICUBIC),
        "group-on-brick": compose(GROUP, back="brick")[0],
        "trio-on-rocket-800x450": compose(TRIO, back="rocket")[0].resize((800, 450)),
        "astronaut": Image.fromarray(skdata.astronaut()),
        "camera": Image.fromarray(skdata.camera()),  # grayscale
    }
    photos.update({name: Image.fromarray(getattr(skdata, name)()) for name in NON_FACE_PHOTOS})
    files = {name: (_encode(im), "image/png") for name, im in photos.items()}
    files["group-jpeg"] = (_encode(group, "JPEG", quality=90), "image/jpeg")
    return files


def _iou(a: dict, b: dict) -> float:
    x1, y1 = max(a["x"], b["x"]), max(a["y"], b["y"])
    x2 = min(a["x"] + a["width"], b["x"] + b["width"])
    y2 = min(a["y"] + a["height"], b["y"] + b["height"])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def _compare(service_faces: list[dict], page_faces: list[dict]) -> dict:
    """Each of the service's faces against the page's face that overlaps it most."""
    ious, diffs = [], []
    for face in service_faces:
        best = max(page_faces, key=lambda f: _iou(face, f), default=None)
        ious.append(_iou(face, best) if best else 0.0)
        diffs.append(abs(face["score"] - best["score"]) if best else 1.0)
    return {"service": len(service_faces), "page": len(page_faces),
            "min_iou": round(min(ious, default=1.0), 6),
            "max_score_diff": round(max(diffs, default=0.0), 6)}  # fmt: skip


def _service_faces(data: bytes) -> tuple[list[dict], tuple[int, int]]:
    """What POST /faces finds, with its defaults, as unrounded boxes."""
    settings = Settings.from_env()
    image = decode_image(data, settings.max_pixels, settings.min_side)
    found = detect_faces(image, max_side=settings.detect_side, min_size=service.MIN_SIZE)
    faces = [dataclasses.asdict(f) for f in found[: service.MAX_FACES]]
    return faces, image.size


@pytest.mark.timeout(900)
def test_page_and_service_find_the_same_faces(page, console, server, artifacts):
    files = _photos()
    page.goto(server)
    answers = {}
    names = list(files)
    for start in range(0, len(names), 4):  # a few at a time: large photos travel as base64
        chunk = names[start : start + 4]
        args = [[base64.b64encode(files[n][0]).decode(), files[n][1]] for n in chunk]
        answers.update(zip(chunk, page.evaluate(FIND_ALL, args), strict=True))
    report = {}
    for name, (data, _) in files.items():
        expected, size = _service_faces(data)
        answer = answers[name]
        assert (answer["image"]["width"], answer["image"]["height"]) == size, name
        got = [{**f["detection"], "score": f["score"]} for f in answer["faces"]]
        report[name] = _compare(expected, got)
        assert all(len(f["predictions"]) == 8 for f in answer["faces"]), name
    record(artifacts, detector_parity=report)
    print("\npage vs service:", json.dumps(report))
    for name, r in report.items():
        assert r["page"] == r["service"], (name, r)
        assert r["min_iou"] >= MIN_IOU and r["max_score_diff"] <= MAX_SCORE_DIFF, (name, r)
    assert report["group"]["service"] == len(GROUP) and report["trio"]["service"] == len(TRIO)
    assert all(report[name]["service"] == 0 for name in NON_FACE_PHOTOS)
    assert not console.errors, console.errors


def _crops() -> list[Image.Image]:
    """Squares like the live view's: around each face of the group photo with a 25% margin
    (some cut by the photo's edge), off-centre ones, and patches of photos without faces."""
    photo, truth = group_photo()
    crops = []
    for face in truth:
        for grow, dx in ((1.5, 0), (2.0, 0.2), (1.3, -0.15)):
            side = face.width * grow
            cx, cy = face.centre[0] + dx * face.width, face.centre[1]
            box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            crops.append(photo.crop(tuple(round(v) for v in box)))
    rng = np.random.default_rng(9)
    for name in NON_FACE_PHOTOS[:4]:
        image = Image.fromarray(getattr(skdata, name)()).convert("RGB")
        for _ in range(4):
            side = int(rng.integers(60, min(image.size)))
            x, y = (int(rng.integers(0, s - side + 1)) for s in image.size)
            crops.append(image.crop((x, y, x + side, y + side)))
    return crops


def test_the_crop_check_agrees_with_the_services(page, console, server, artifacts):
    crops = _crops()
    framing = Framing.from_card(json.loads(CARD.read_text()))
    page.goto(server)
    answers = page.evaluate(CHECK_ALL, [base64.b64encode(_encode(c)).decode() for c in crops])
    agree, ious, diffs = 0, [], []
    for crop, answer in zip(crops, answers, strict=True):
        face = face_in_crop(crop)
        js = answer["face"]
        assert answer["cropSize"] == crop.width
        agree += (face is not None) == js["found"]
        # The part of the crop the classifier read: /face's `region`, with the page's card.
        assert js["region"] == service._face_block(face, crop, framing)["region"]
        if face is not None and js["found"]:
            ious.append(_iou(service._clipped_box(face, crop.size), js["box"]))
            diffs.append(abs(face.score - js["score"]))
    report = {"crops": len(crops), "found_agrees": agree, "with_face": len(ious),
              "min_iou": round(min(ious), 6), "max_score_diff": round(max(diffs), 6)}  # fmt: skip
    record(artifacts, crop_check_parity=report)
    print("\ncrop check, page vs service:", json.dumps(report))
    assert agree == len(crops), report
    assert len(ious) >= 20, report  # most face crops hold a face, by either detector
    assert min(ious) >= MIN_IOU and max(diffs) <= MAX_SCORE_DIFF, report
    assert not console.errors, console.errors


# --- Chromium: the photo upload in on-device mode ------------------------------------------
CLASSES = json.loads(CARD.read_text())["classes"]


def _all_requests(page) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda r: r.url.startswith("http") and sent.append(r.url))
    return sent


def test_group_photo_on_device_gets_a_card_per_person_and_sends_nothing(
    page, console, server, tmp_path, artifacts
):
    photo, truth = group_photo()
    path = tmp_path / "group.jpg"
    photo.save(path, "JPEG", quality=90)
    page.goto(server)
    choose_device(page)
    sent = _all_requests(page)  # from here on: nothing may go out, not even a model file
    page.set_input_files("#file", str(path))
    expect(page.locator("#upload-status")).to_have_text(
        f"Found {len(truth)} faces in the photo.", timeout=60_000
    )
    cards = page.locator(".face-result")
    expect(cards).to_have_count(len(truth))
    for i in range(len(truth)):
        expect(cards.nth(i).locator("h3")).to_have_text(
            re.compile(rf"Face {i + 1}: ({'|'.join(CLASSES)})")
        )
        expect(page.locator(f"#upload-bars-{i + 1} > li")).to_have_count(8)
    page.locator("#upload-panel").screenshot(
        path=str(artifacts / "browser-upload-group-device.png")
    )
    assert sent == [], f"on-device upload made requests: {sent}"
    assert not console.errors, console.errors


def test_exif_orientation_is_applied_as_the_server_applies_it(page, console, server):
    """A photo stored on its side with an EXIF orientation (6: turn 90 degrees clockwise to
    view): the server's POST /faces and the page find the same faces in the upright photo."""
    upright = trio_photo()[0]
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", quality=92, exif=exif.tobytes())
    served = httpx.post(server + "faces", content=data, headers={"Content-Type": "image/jpeg"})
    assert served.status_code == 200, served.text
    body = served.json()
    assert (body["image"]["width"], body["image"]["height"]) == upright.size
    page.goto(server)
    (answer,) = page.evaluate(FIND_ALL, [[base64.b64encode(data).decode(), "image/jpeg"]])
    assert (answer["image"]["width"], answer["image"]["height"]) == upright.size
    expected = [{**f["box"], "score": f["score"]} for f in body["faces"]]
    got = [{**f["box"], "score": f["score"]} for f in answer["faces"]]
    report = _compare(expected, got)
    assert report["service"] == len(TRIO) and report["page"] == len(TRIO), report
    assert report["min_iou"] >= MIN_IOU and report["max_score_diff"] <= MAX_SCORE_DIFF, report
    assert not console.errors, console.errors


def test_no_face_on_device_says_so_and_draws_nothing(page, console, server, tmp_path):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (200, 150), (120, 140, 160)).save(wall)
    page.goto(server)
    choose_device(page)
    page.set_input_files("#file", str(wall))
    expect(page.locator("#upload-status")).to_have_text(re.compile("No face was found"))
    page.wait_for_timeout(500)  # nothing else arrives later
    expect(page.locator(".face-result")).to_have_count(0)
    panel = page.locator("#upload-panel").inner_text()
    assert not [name for name in CLASSES if name in panel], panel
    # The photo is shown as it is: every pixel the wall's colour, no box, no label.
    colours = page.evaluate("""() => {
        const c = document.getElementById('photo');
        const p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < p.length; i += 4) seen.add(`${p[i]},${p[i + 1]},${p[i + 2]}`);
        return [...seen];
    }""")
    assert colours == ["120,140,160"], colours[:5]
    assert not console.errors, console.errors


@pytest.mark.parametrize("mode", ["server", "device"])
def test_a_file_that_is_not_an_image_is_said_plainly(page, console, server, tmp_path, mode):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 20)
    sent = api_requests(page)
    page.goto(server)
    if mode == "device":
        choose_device(page)
    page.set_input_files("#file", str(bad))
    expect(page.locator("#upload-status")).to_have_text("This file could not be read as an image.")
    expect(page.locator(".face-result")).to_have_count(0)
    assert sent == []


def test_the_detector_downloads_once_only_in_on_device_mode(page, server):
    """Server mode fetches no model; on-device mode fetches the detector (a hashed file,
    <= 2 MB, matching its manifest) once, beside the classifier."""
    models: list[str] = []
    page.on("request", lambda r: "/models/" in r.url and models.append(r.url.rsplit("/", 1)[-1]))
    page.goto(server)
    page.wait_for_timeout(1000)
    assert models == [], f"server mode fetched {models}"
    choose_device(page)
    manifest = httpx.get(server + "models/detector.json").json()
    assert sorted(m for m in models if m.startswith(("face-detector", "detector"))) == sorted(
        ["detector.json", manifest["file"]]
    )
    model = httpx.get(server + "models/" + manifest["file"]).content
    assert re.fullmatch(r"face-detector\.[0-9a-f]{8}\.onnx", manifest["file"])
    assert len(model) == manifest["bytes"] <= 2_000_000
    assert hashlib.sha256(model).hexdigest() == manifest["sha256"] == _card()["sha256"]
    for field in ("mean_bgr", "anchors", "thresholds", "pad_multiple"):
        assert manifest[field] == _card()[field]


def test_a_truncated_photo_is_said_plainly_on_device(page, server, tmp_path):
    """Half a JPEG: Chromium's <img> shows what it could read, but the page does not analyse
    it; it says the data is truncated or corrupt, as /faces does, and no card appears. (Server
    mode now sends a JPEG copy of what <img> shows, so the server never sees the truncation.)"""
    whole = _encode(trio_photo()[0], "JPEG", quality=90)
    path = tmp_path / "half.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    served = httpx.post(server + "faces", content=path.read_bytes(),
                        headers={"Content-Type": "image/jpeg"})  # fmt: skip
    assert served.status_code == 400 and served.json()["error"] == "truncated_image"
    page.goto(server)
    choose_device(page)
    page.set_input_files("#file", str(path))
    expect(page.locator("#upload-status")).to_have_text(
        re.compile(r"^The photo could not be analysed: .*truncated or corrupt\.")
    )
    expect(page.locator(".face-result")).to_have_count(0)
