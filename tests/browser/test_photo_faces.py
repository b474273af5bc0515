"""The photo upload path on POST /faces, in real Chromium against the real server: every face
in a group photo gets a box and a result card; a failing /faces is said plainly."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from face_scenes import group_photo

CLASSES = ["Anger", "Disgust", "Surprise", "Sadness", "Happiness", "Neutral", "Contempt", "Fear"]


def test_group_photo_gets_a_card_per_face_from_the_server(page, console, server, tmp_path, artifacts):  # fmt: skip
    photo, truth = group_photo()
    path = tmp_path / "group.jpg"
    photo.save(path, "JPEG", quality=90)
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url.split("?")[0].rsplit("/", 1)[-1])))
    page.goto(server)
    page.set_input_files("#file", str(path))
    expect(page.locator("#upload-status")).to_have_text(f"Found {len(truth)} faces in the photo.")
    cards = page.locator(".face-result")
    expect(cards).to_have_count(len(truth))
    for i in range(len(truth)):
        expect(cards.nth(i).locator("h3")).to_have_text(
            re.compile(rf"Face {i + 1}: ({'|'.join(CLASSES)})")
        )
        bars = page.locator(f"#upload-bars-{i + 1} > li")
        expect(bars).to_have_count(8)
    expect(page.locator("#photo")).to_be_visible()
    # one request for the whole photo; no crop goes to /face, no face found in the page
    assert sent.count(("POST", "faces")) == 1
    assert ("POST", "face") not in sent
    page.locator("#upload-panel").screenshot(path=str(artifacts / "browser-upload-group.png"))
    assert console.errors == []


def test_a_refused_photo_is_said_plainly(page, console, server, media):
    page.route(
        "**/faces?*",
        lambda route: route.fulfill(
            status=413,
            content_type="application/json",
            body=json.dumps({"error": "image_too_large", "detail": "The image is too large."}),
        ),
    )
    page.goto(server)
    page.set_input_files("#file", str(media["photo"]))
    expect(page.locator("#upload-status")).to_have_text(
        "The photo could not be analysed: The server refused the image: The image is too large."
        " Choose it again to retry."
    )
    expect(page.locator(".face-result")).to_have_count(0)
    panel = page.locator("#upload-panel").inner_text()
    assert not [name for name in CLASSES if name in panel], panel


def test_an_unreachable_server_is_said_plainly_after_retries(page, server, media):
    calls = []

    def abort(route):
        calls.append(1)
        route.abort()

    page.route("**/faces?*", abort)
    page.goto(server)
    page.set_input_files("#file", str(media["photo"]))
    expect(page.get_by_role("alert")).to_have_text(re.compile("server cannot be reached"))
    expect(page.locator("#upload-status")).to_have_text(
        re.compile(r"^The photo could not be analysed: The server cannot be reached\."),
        timeout=40_000,
    )
    assert len(calls) >= 2  # retried with backoff before giving up
    expect(page.locator(".face-result")).to_have_count(0)
