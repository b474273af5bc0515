"""The page for everyone, in real Chromium: no critical or serious axe-core violation in any
state, at a desktop size and on a phone (390x844, touch), nothing scrolling sideways or drawn
over a control there; a screenshot of every state goes to artifacts/a11y-<size>-<state>.png."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import SIZES, axe_violations, layout_problems, new_context

CLASSES = ["Anger", "Disgust", "Surprise", "Sadness", "Happiness", "Neutral", "Contempt", "Fear"]
FIRST_FACE_MS = 45_000  # tracking.js and the first answer on a busy machine (a wait, no target)

NO_FACE = {
    "predictions": dict.fromkeys(CLASSES, 0.125),
    "top": "Anger",
    "face": {"found": False, "score": 0.0, "box": {"x": 0, "y": 0, "width": 96, "height": 96}},
    "model": "test",
}


class States:
    """Checks the page in each state and keeps what failed, so one run reports every state."""

    def __init__(self, page, size: str, artifacts):
        self.page, self.size, self.artifacts = page, size, artifacts
        self.failures: dict[str, list[str]] = {}
        self.checked: list[str] = []

    def check(self, state: str, show: str | None = None) -> None:
        """axe and the layout checks; then a screenshot of the top of the page, or of `show`."""
        self.page.wait_for_timeout(200)  # let transitions (bar widths) settle for the picture
        found = axe_violations(self.page) + layout_problems(self.page)
        if show:
            self.page.locator(show).first.scroll_into_view_if_needed()
        else:
            self.page.evaluate("() => scrollTo(0, 0)")
        self.page.screenshot(path=str(self.artifacts / f"a11y-{self.size}-{state}.png"))
        self.checked.append(state)
        if found:
            self.failures[state] = found

    def assert_clean(self) -> None:
        report = json.dumps(self.failures, indent=1)
        assert not self.failures, f"{self.size}: axe or layout problems:\n{report}"


@pytest.mark.parametrize("size", list(SIZES))
def test_every_state_is_accessible(browser, server, media, artifacts, size):
    context = new_context(browser, server, size)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        states = States(page, size, artifacts)
        # On the phone, buttons are tapped (touch events), not clicked.
        press = (lambda button: button.tap()) if size == "phone" else (lambda b: b.click())
        page.goto(server)
        page.wait_for_selector("body[data-ready=true]", state="attached")
        states.check("camera-off")

        page.set_input_files("#file", str(media["photo"]))
        expect(page.locator(".face-result").first).to_be_visible(timeout=30_000)
        states.check("photo-results", show=".face-result")

        press(page.get_by_role("button", name="Start camera"))
        expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
        expect(page.locator("#top-emotion")).to_have_text(re.compile("|".join(CLASSES)))
        states.check("camera-face")

        # What the model saw, open (and left open through the states below).
        press(page.get_by_role("button", name="What the model saw"))
        expect(page.locator("#seen")).to_have_attribute("data-state", "shown", timeout=20_000)
        states.check("model-saw", show="#seen")

        page.route("**/face", lambda route: route.abort())
        expect(page.locator("#result-state")).to_be_visible(timeout=10_000)
        states.check("paused")
        page.unroute("**/face")

        # The server answers that the crops hold no face: the panel says so, bars dimmed.
        page.route("**/face", lambda route: route.fulfill(json=NO_FACE))
        expect(page.locator("#top-emotion")).to_have_text("No face in view", timeout=30_000)
        states.check("camera-no-face")
        page.unroute("**/face")

        press(page.get_by_role("button", name="Stop camera"))
        expect(page.locator("#top-emotion")).to_have_text("Camera off")
        states.check("camera-stopped")

        # On-device mode while its model downloads (the network slowed, so it takes a while).
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 50, "downloadThroughput": 1_000_000,
             "uploadThroughput": 1_000_000},
        )  # fmt: skip
        page.get_by_label("Analyse on this device").check()
        expect(page.locator("#analyse-status")).to_have_text(re.compile("Downloading"))
        expect(page.locator("#model-progress")).to_be_visible()
        states.check("device-downloading")
        assert len(states.checked) == 8
        states.assert_clean()
    finally:
        context.close()
