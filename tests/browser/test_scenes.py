"""Several people at webcam scale, with clutter that fools Viola-Jones (tests/browser/scenes.py),
played as the camera in real Chromium against the real server. The page must show every face
and nothing else: the count equals the people, every drawn box is on a person, the main face is
the largest person, the crops it sends hold a face (checked with the server's own detector),
and the main face's expression is the one the person shows.

Targets (issue 13): faces shown = people in >= 95% of samples, never more; >= 95% of sent crops
hold a face; a wrong main face never shown for more than 0.5 s.

Each scene plays in both modes: on the server, and on this device (issue 22), where the same
detector checks the crops in the page's worker; there the same faces must be shown and nothing
may be sent."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from emotion.detect import detect_faces
from tests.browser.conftest import CHROMIUM, chromium_args, write_y4m
from tests.browser.scenes import EXPRESSION, FPS, NOBODY, SCENES, Scene, frames
from tests.browser.test_ondevice import api_requests, choose_device

MODES = ("server", "device")

SAMPLE_SECONDS = 6.0
SAMPLE_EVERY_S = 0.1
SETTLE_TIMEOUT_MS = 60_000  # a wait (busy machines are slow), not a target
SAMPLE_JS = """() => ({
    boxes: JSON.parse(document.getElementById('overlay').dataset.faces || '[]'),
    count: Number(document.getElementById('faces').dataset.value),
    top: document.getElementById('top-emotion').textContent,
})"""


@dataclass
class Sent:
    """What the page sent to /face and what came back."""

    crops: list[Image.Image] = field(default_factory=list)
    found: list[bool] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)  # the server's check, per crop


def _face_regions(name: str) -> list[tuple[float, float, float, float]]:
    """Each person's face box over the whole loop (they sway a few pixels)."""
    boxes = [b for _, b in frames(SCENES[name], FPS)]
    regions = []
    for k in range(len(boxes[0])):
        xs0, ys0, xs1, ys1 = zip(*(f[k] for f in boxes), strict=True)
        regions.append((min(xs0), min(ys0), max(xs1), max(ys1)))
    return regions


def _person_of(box: dict, regions) -> int | None:
    """The person whose face the drawn box is on (its centre inside the face), or None."""
    cx = box["x"] + box["width"] / 2
    cy = box["y"] + box["height"] / 2
    for k, (x0, y0, x1, y1) in enumerate(regions):
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return k
    return None


def _person_index(box: dict, regions) -> int:
    person = _person_of(box, regions)
    return -1 if person is None else person


def _record(page) -> Sent:
    sent = Sent()

    def on_request(request) -> None:
        if request.method == "POST" and request.url.endswith("/face"):
            field_value = parse_qs(request.post_data or "").get("imgBase64", [""])[0]
            raw = base64.b64decode(field_value.split(",", 1)[-1])
            sent.crops.append(Image.open(io.BytesIO(raw)).convert("RGB"))

    def on_response(response) -> None:
        if response.request.method == "POST" and response.url.endswith("/face"):
            with contextlib.suppress(PlaywrightError):  # an aborted request has no body
                body = response.json()
                sent.found.append(bool(body["face"]["found"]))
                sent.detect_ms.append(float(body.get("timings_ms", {}).get("detect", "nan")))

    page.on("request", on_request)
    page.on("response", on_response)
    return sent


@contextlib.contextmanager
def _camera_on(playwright, server: str, scene: Scene, folder: Path):
    """A page in a Chromium whose camera plays the scene."""
    video = write_y4m(folder / f"{scene.name}.y4m", [image for image, _ in frames(scene, FPS)])
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(video))
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["camera"], origin=server.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
        browser.close()


@pytest.fixture(
    scope="module",
    params=[(name, mode) for mode in MODES for name in SCENES],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def scene_page(request, playwright, server, tmp_path_factory):
    name, mode = request.param
    with _camera_on(playwright, server, SCENES[name], tmp_path_factory.mktemp(name)) as page:
        yield name, mode, page


def _open(page, server: str, mode: str) -> list[str]:
    """The page in `mode`; the /face and /faces requests it makes from then on."""
    requests = api_requests(page)
    page.goto(server)
    if mode == "device":
        choose_device(page)
    return requests


def test_scene_shows_every_face_and_only_faces(scene_page, server, artifacts):
    name, mode, page = scene_page
    scene = SCENES[name]
    people = len(scene.people)
    regions = _face_regions(name)
    largest = max(range(people), key=lambda k: scene.people[k].face_px)
    sent = _record(page)
    requests = _open(page, server, mode)
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#faces")).to_have_attribute(
        "data-value", str(people), timeout=SETTLE_TIMEOUT_MS
    )
    crops_before = len(sent.crops)

    samples = []
    started = time.monotonic()
    while time.monotonic() - started < SAMPLE_SECONDS:
        sample = page.evaluate(SAMPLE_JS)
        sample["t"] = time.monotonic() - started
        samples.append(sample)
        page.wait_for_timeout(SAMPLE_EVERY_S * 1000)
    label = name if mode == "server" else f"{name}-device"
    page.screenshot(path=str(artifacts / f"browser-scene-{label}.png"))

    # The count and the boxes: one per person, on the person.
    right = [
        s
        for s in samples
        if len(s["boxes"]) == people
        and sorted(_person_index(b, regions) for b in s["boxes"]) == list(range(people))
    ]
    too_many = [s for s in samples if len(s["boxes"]) > people or s["count"] > people]
    on_nothing = [b for s in samples for b in s["boxes"] if _person_of(b, regions) is None]

    # The main face (drawn first) is the largest person; a wrong one never lasts 0.5 s.
    longest_wrong = wrong_since = 0.0
    wrong = False
    for s in samples:
        main_ok = bool(s["boxes"]) and _person_of(s["boxes"][0], regions) == largest
        if not main_ok and not wrong:
            wrong, wrong_since = True, s["t"]
        elif main_ok:
            wrong = False
        if wrong:
            longest_wrong = max(longest_wrong, s["t"] - wrong_since)
    expression_right = sum(s["top"] == EXPRESSION for s in samples)

    # The crops sent while sampling hold a face, by the server's own detector.
    window = sent.crops[crops_before:]
    faceless = [crop for crop in window if not detect_faces(crop)]
    with_face = len(window) - len(faceless)
    for k, crop in enumerate(faceless[:12]):  # what was sent without a face, to look at
        crop.save(artifacts / f"browser-scene-{label}-faceless-{k}.png")
    all_with_face = with_face + sum(bool(detect_faces(c)) for c in sent.crops[:crops_before])

    report = {
        "scene": name,
        "mode": mode,
        "people": people,
        "samples": len(samples),
        "count_and_boxes_right": round(len(right) / len(samples), 3),
        "samples_with_too_many": len(too_many),
        "boxes_on_no_face": len(on_nothing),
        "longest_wrong_main_s": round(longest_wrong, 2),
        "main_expression_right": round(expression_right / len(samples), 3),
        "crops_sent_while_sampling": len(window),
        "crops_with_a_face": round(with_face / max(1, len(window)), 3),
        "crops_sent_since_start": len(sent.crops),
        "crops_with_a_face_since_start": round(all_with_face / max(1, len(sent.crops)), 3),
        "server_found_a_face": round(sum(sent.found) / max(1, len(sent.found)), 3),
        # What verifying costs the server per crop (to be re-measured on an idle machine).
        "server_detect_ms_median": statistics.median(sent.detect_ms) if sent.detect_ms else None,
    }
    (artifacts / f"browser-scene-{label}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{json.dumps(report)}")

    if len(right) < 0.95 * len(samples):
        print([(round(s["t"], 2), s["count"], s["boxes"]) for s in samples if s not in right][:10])
    assert not too_many, f"more faces shown than people: {too_many[:3]}"
    assert not on_nothing, f"boxes drawn on something that is not a face: {on_nothing[:3]}"
    assert len(right) >= 0.95 * len(samples), report
    assert longest_wrong <= 0.5, report
    if mode == "server":
        assert len(window) >= 10, f"only {len(window)} crops sent in {SAMPLE_SECONDS} s"
        assert with_face >= 0.95 * len(window), report
    else:  # the same detector checked the crops in the page: nothing was sent
        assert requests == [], f"on-device mode sent {requests[:3]}"
    assert expression_right >= 0.9 * len(samples), report


@pytest.mark.parametrize("mode", MODES)
def test_clutter_alone_shows_no_face_and_no_emotion(playwright, server, tmp_path, artifacts, mode):
    """Suits with striped ties in front of a bookshelf: tracking.js proposes boxes, the server
    (or the page's own copy of its detector) finds no face in their crops, so the page draws
    nothing, counts 0, says "No face" and shows no emotion; boxes set aside are re-checked
    ever more rarely."""
    with _camera_on(playwright, server, NOBODY, tmp_path) as page:
        sent = _record(page)
        requests = _open(page, server, mode)
        page.get_by_role("button", name="Start camera").click()
        expect(page.locator("#status")).to_have_text("Camera on.", timeout=SETTLE_TIMEOUT_MS)
        page.wait_for_timeout(3000)  # tracking.js proposes, the server rejects
        crops_before = len(sent.crops)
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < SAMPLE_SECONDS:
            samples.append(page.evaluate(SAMPLE_JS))
            page.wait_for_timeout(SAMPLE_EVERY_S * 1000)
        late = len(sent.crops) - crops_before
        suffix = "" if mode == "server" else "-device"
        page.screenshot(path=str(artifacts / f"browser-scene-nobody{suffix}.png"))
        print(f"\nnobody: {len(sent.crops)} crops sent, {late} in the last {SAMPLE_SECONDS} s")
        assert all(s["count"] == 0 and not s["boxes"] for s in samples), samples[:3]
        assert all(s["top"] == "No face in view" for s in samples), {s["top"] for s in samples}
        expect(page.locator("#bars")).to_have_class(re.compile("stale|empty"))
        # Whatever tracking.js proposed was checked, found to be no face, then left alone.
        assert not any(sent.found), "the server's detector found a face in the clutter"
        assert late <= 1 * SAMPLE_SECONDS, f"{late} crops in {SAMPLE_SECONDS} s for no face"
        if mode == "device":
            assert requests == [], f"on-device mode sent {requests[:3]}"
