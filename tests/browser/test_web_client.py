"""The page in a real browser: Debian's Chromium, a fake camera playing a real face photo, the
real server. Screenshots and the measured speed go to artifacts/."""

from __future__ import annotations

import base64
import io
import json
import re
import time

from PIL import Image
from playwright.sync_api import expect

CLASSES = ["Anger", "Disgust", "Surprise", "Sadness", "Happiness", "Neutral", "Contempt", "Fear"]
PERCENT = re.compile(r"^\d{1,3}\.\d%$")
MEASURE_SECONDS = 4.0
# A floor only a broken page misses (a stalled or one-shot loop), whatever the machine's load.
# The rate itself is a benchmark figure, target 15/s: `make bench` reports the one measured
# here (artifacts/browser-metrics.json) beside that target.
MIN_RATE = 3  # predictions/s with one face in view
# The astronaut in the fake camera's video smiles: the model reads her as Happiness (as the
# API tests do for the same face), on the server and on the device.
SHOWN_EXPRESSION = "Happiness"
# A face counts once the server has confirmed it: on a busy machine tracking.js and the first
# answer can take many seconds (a wait, not a target).
FIRST_FACE_MS = 45_000


def read_bars(page, selector: str = "#bars") -> list[tuple[str, str, float]]:
    """(name, shown percentage, aria-valuenow) for each bar, in page order."""
    return page.eval_on_selector_all(
        f"{selector} > li",
        """rows => rows.map(r => [
            r.querySelector('.bar-name').textContent,
            r.querySelector('.bar-value').textContent,
            Number(r.querySelector('[role=meter]').getAttribute('aria-valuenow')),
        ])""",
    )


def assert_eight_sorted_bars(bars) -> None:
    assert sorted(name for name, _, _ in bars) == sorted(CLASSES)
    for name, shown, _ in bars:
        assert PERCENT.match(shown), f"{name}: {shown!r} is not a percentage"
    values = [value for _, _, value in bars]
    assert values == sorted(values, reverse=True), f"bars are not sorted: {bars}"
    assert abs(sum(values) - 100) < 1.5, f"percentages do not add up to 100: {values}"


def overlay_pixels(page) -> int:
    """How many pixels the overlay canvas has drawn (face boxes and their labels)."""
    return page.evaluate(
        """() => {
            const c = document.getElementById('overlay');
            if (!c.width || !c.height) return 0;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
            return n;
        }"""
    )


def test_live_camera_tracks_the_face_and_shows_all_emotions(page, console, server, artifacts):
    answers: list[float] = []
    page.on(
        "response",
        lambda r: (
            r.url.endswith("/face")
            and r.request.method == "POST"
            and r.status == 200
            and answers.append(time.monotonic())
        ),
    )
    response = page.goto(server)
    assert "content-security-policy" in response.headers  # the page runs under the strict CSP
    page.get_by_role("button", name="Start camera").click()

    # A face box appears around the astronaut, with its top emotion; the server checked it.
    expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
    assert len(json.loads(page.get_attribute("#overlay", "data-faces"))) == 1
    expect(page.locator("#top-emotion")).to_have_text(re.compile("|".join(CLASSES)))
    # Read as the expression the video shows, not just any class.
    expect(page.locator("#top-emotion")).to_have_attribute("data-emotion", SHOWN_EXPRESSION)
    assert overlay_pixels(page) > 500, "no face box was drawn on the overlay"
    assert page.workers, "face detection did not run in a worker"

    # All eight classes with percentages, sorted, for the main face.
    assert_eight_sorted_bars(read_bars(page))

    # They keep updating, fast enough to feel live.
    updates_before = int(page.get_attribute("#bars", "data-updates"))
    seen_before = len(answers)
    started = time.monotonic()
    page.wait_for_timeout(MEASURE_SECONDS * 1000)
    elapsed = time.monotonic() - started
    measured = (len(answers) - seen_before) / elapsed
    shown_rate = float(page.get_attribute("#rate", "data-value"))
    shown_rtt = float(page.get_attribute("#rtt", "data-value"))
    updates = int(page.get_attribute("#bars", "data-updates")) - updates_before
    bars = read_bars(page)
    assert_eight_sorted_bars(bars)
    page.screenshot(path=str(artifacts / "browser-live.png"), full_page=True)
    metrics = {
        "predictions_per_second_measured_by_test": round(measured, 2),
        "predictions_per_second_shown_by_page": shown_rate,
        "round_trip_ms_shown_by_page": shown_rtt,
        "bar_updates": updates,
        "seconds": round(elapsed, 2),
        "bars": bars,
    }
    (artifacts / "browser-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"\nlive: {measured:.1f} predictions/s (page shows {shown_rate}), {shown_rtt:.0f} ms")
    assert updates >= MEASURE_SECONDS * MIN_RATE, f"the bars updated only {updates} times"
    assert measured >= MIN_RATE, f"only {measured:.1f} predictions/s: the live loop stalled"
    assert shown_rate >= MIN_RATE, f"the page shows {shown_rate} predictions/s"
    assert bars[0][0] == SHOWN_EXPRESSION, f"the face was read as {bars[0][0]}: {bars}"
    assert shown_rtt > 0

    # Stop releases the camera: every track of the stream ends.
    page.evaluate("() => { window.__stream = document.getElementById('video').srcObject; }")
    page.get_by_role("button", name="Stop camera").click()
    ended = page.evaluate(
        "() => window.__stream.getTracks().every(t => t.readyState === 'ended')"
        " && document.getElementById('video').srcObject === null"
    )
    assert ended, "the camera was not released"
    expect(page.get_by_role("button", name="Start camera")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop camera")).to_be_disabled()
    assert console.errors == []


def test_photo_upload_shows_a_result_per_face(page, console, server, media, artifacts):
    page.goto(server)
    page.set_input_files("#file", str(media["photo"]))
    result = page.locator(".face-result").first
    expect(result).to_be_visible(timeout=20_000)
    expect(page.locator("#upload-status")).to_have_text(
        re.compile(r"Found \d+ faces? in the photo")
    )
    expect(result.locator("h3")).to_have_text(re.compile(rf"Face 1: ({'|'.join(CLASSES)})"))
    assert_eight_sorted_bars(read_bars(page, "#upload-bars-1"))
    expect(page.locator("#photo")).to_be_visible()
    page.locator("#upload-panel").screenshot(path=str(artifacts / "browser-upload.png"))
    assert console.errors == []


def test_dropped_photo_is_analysed_even_without_workers(page, console, server, media):
    buffer = io.BytesIO()
    Image.open(media["photo"]).save(buffer, "JPEG", quality=90)
    page.add_init_script("delete window.Worker;")  # detection falls back to the page itself
    page.goto(server)
    page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'astronaut.jpg', { type: 'image/jpeg' }));
            const zone = document.getElementById('dropzone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, {
                    dataTransfer: transfer, bubbles: true, cancelable: true,
                }));
            }
        }""",
        base64.b64encode(buffer.getvalue()).decode(),
    )
    expect(page.locator(".face-result").first).to_be_visible(timeout=20_000)
    expect(page.locator("#upload-status")).to_have_text(
        re.compile(r"Found \d+ faces? in the photo")
    )
    assert_eight_sorted_bars(read_bars(page, "#upload-bars-1"))
    assert page.workers == []
    assert console.errors == []


def test_a_photo_without_a_face_says_so_and_shows_no_emotion(page, console, server, tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 150), (120, 140, 160)).save(blank)
    page.goto(server)
    page.set_input_files("#file", str(blank))
    expect(page.locator("#upload-status")).to_have_text(re.compile("No face was found"))
    page.wait_for_timeout(500)  # nothing else arrives later
    expect(page.locator(".face-result")).to_have_count(0)
    panel = page.locator("#upload-panel").inner_text()
    assert not [name for name in CLASSES if name in panel], panel
    assert not re.search(r"\d+\.\d%", panel), panel
    assert console.errors == []


def test_denied_camera_is_explained_and_upload_offered(page, console, server):
    page.add_init_script(
        """navigator.mediaDevices.getUserMedia = () =>
            Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""
    )
    page.goto(server)
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#status")).to_have_text(re.compile("permission was denied"))
    expect(page.locator("#upload-panel")).to_have_class(re.compile("suggested"))
    expect(page.get_by_label(re.compile("choose a file"))).to_be_focused()
    assert console.errors == []


def test_server_errors_are_shown_and_retried(page, console, server, artifacts):
    page.route("**/face", lambda route: route.abort())
    page.goto(server)
    page.get_by_role("button", name="Start camera").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(re.compile("server cannot be reached"), timeout=20_000)
    expect(page.locator("#alert-retry")).to_have_text(re.compile("Trying again"))
    page.screenshot(path=str(artifacts / "browser-api-down.png"))

    # An error response: its sentence is shown.
    page.unroute("**/face")
    page.route(
        "**/face",
        lambda route: route.fulfill(
            status=400,
            content_type="application/json",
            body=json.dumps({"error": "bad_image", "detail": "The image could not be decoded."}),
        ),
    )
    expect(alert).to_have_text(re.compile("could not be decoded"), timeout=20_000)

    # The server is back: the retries reach it, the message goes, results come.
    page.unroute("**/face")
    expect(alert).to_have_text("", timeout=30_000)
    before = int(page.get_attribute("#bars", "data-updates") or 0)
    page.wait_for_function(
        f"() => Number(document.getElementById('bars').dataset.updates || 0) > {before + 3}"
    )
    assert not [e for e in console.errors if e.startswith("uncaught")]


def test_portrait_phone_layout(browser, server, artifacts):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(server)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360, f"the page scrolls sideways on a phone ({width} px wide)"
        for name in ("Start camera", "Stop camera"):
            box = page.get_by_role("button", name=name).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360
            assert box["height"] >= 40, "buttons must be easy to tap"
        expect(page.locator("#privacy")).to_contain_text("never stored")
        expect(page.locator("#privacy")).to_be_visible()
        page.screenshot(path=str(artifacts / "browser-portrait.png"), full_page=True)
    finally:
        context.close()


def test_a_stale_result_is_dimmed_and_marked_paused(page, console, server, artifacts):
    page.goto(server)
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
    expect(page.locator("#top-emotion")).to_have_text(re.compile("|".join(CLASSES)))
    expect(page.locator("#result-state")).to_be_hidden()
    expect(page.locator("#bars")).not_to_have_class(re.compile("stale"))

    # The server goes away: the moment a request fails, the last result is shown as paused.
    page.route("**/face", lambda route: route.abort())
    expect(page.locator("#result-state")).to_be_visible(timeout=5_000)
    expect(page.locator("#result-state")).to_have_text(re.compile("Paused"))
    expect(page.locator("#bars")).to_have_class(re.compile("stale"))
    expect(page.locator("#top-emotion")).to_have_class(re.compile("stale"))
    page.screenshot(path=str(artifacts / "browser-paused.png"))

    # It comes back: live again, not dimmed.
    page.unroute("**/face")
    expect(page.locator("#result-state")).to_be_hidden(timeout=30_000)
    expect(page.locator("#bars")).not_to_have_class(re.compile("stale"))
    expect(page.locator("#top-emotion")).not_to_have_class(re.compile("stale"))
    assert not [e for e in console.errors if e.startswith("uncaught")]


def test_a_hanging_server_pauses_the_result_too(page, server):
    page.goto(server)
    page.get_by_role("button", name="Start camera").click()
    expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
    expect(page.locator("#result-state")).to_be_hidden()
    page.route("**/face", lambda route: None)  # never answered
    expect(page.locator("#result-state")).to_be_visible(timeout=5_000)
    expect(page.locator("#bars")).to_have_class(re.compile("stale"))


def test_phone_shows_all_eight_bars_while_the_camera_runs(browser, server, artifacts):
    width, height = 390, 844
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=True)
    context.grant_permissions(["camera"], origin=server.rstrip("/"))
    try:
        page = context.new_page()
        page.goto(server)
        page.get_by_role("button", name="Start camera").click()
        expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
        expect(page.locator("#top-emotion")).to_have_text(re.compile("|".join(CLASSES)))
        page.wait_for_timeout(300)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        for row in page.locator("#bars > li").all():
            box = row.bounding_box()
            name = row.locator(".bar-name").text_content()
            assert box, f"the {name} bar is not laid out"
            assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{name} is off screen"
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{name} is off screen"
            expect(row).to_be_visible()
        top = page.locator("#top-emotion").bounding_box()
        assert top and top["y"] >= 0 and top["y"] + top["height"] <= height
        # The camera stays in view above the results.
        stage = page.locator("#stage").bounding_box()
        assert stage and stage["y"] < height / 2 and stage["y"] + stage["height"] > 0
        page.screenshot(path=str(artifacts / "browser-phone-live.png"))
    finally:
        context.close()
