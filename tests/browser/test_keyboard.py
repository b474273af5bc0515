"""The page by keyboard alone, in real Chromium, at the desktop size and on a phone: every
control is reached with Tab, shows a visible focus ring that nothing covers, and works with
Space or Enter (the radio group with its arrow keys, as native radios do); the expression
panel announces a new main expression once, not on every frame."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import SIZES, new_context

CLASSES = ["Anger", "Disgust", "Surprise", "Sadness", "Happiness", "Neutral", "Contempt", "Fear"]
FIRST_FACE_MS = 45_000  # a wait on a busy machine, not a target

# The focused control as drawn (a hidden file input by its label), whether it shows a ring,
# and whether anything is drawn over its middle.
FOCUS = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const shown = el.matches('input[type=file]') ? (el.closest('label') || el) : el;
    const style = getComputedStyle(shown);
    const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
    const r = shown.getBoundingClientRect();
    const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    const inView = r.top >= 0 && r.bottom <= innerHeight;
    const label = el.labels && el.labels.length ? el.labels[0].textContent : el.textContent;
    return {
        name: (el.id ? '#' + el.id + ' ' : '') + (label || '').trim().replace(/\\s+/g, ' ').slice(0, 40),
        ring,
        visible: inView && !!hit && (shown.contains(hit) || hit.contains(shown)),
    };
}"""


def tab_to(page, pattern: str, *, back: bool = False, limit: int = 20) -> dict:
    """Presses Tab (Shift+Tab) until a control whose name matches is focused; checks every
    control passed on the way shows a ring and is not hidden."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        focus = page.evaluate(FOCUS)
        if focus is None:
            continue
        assert focus["ring"], f"{focus['name']} has no visible focus ring"
        assert focus["visible"], f"{focus['name']} is focused but covered or off screen"
        if re.search(pattern, focus["name"]):
            return focus
    raise AssertionError(f"no control matching {pattern!r} within {limit} Tab presses")


@pytest.mark.parametrize("size", list(SIZES))
def test_every_control_works_by_keyboard(browser, server, media, artifacts, size):
    context = new_context(browser, server, size)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        # File choosers are intercepted from the start: turned on only around the key press,
        # the interception can come too late for a chooser that opens at once.
        page.on("filechooser", lambda chooser: None)
        page.goto(server)
        page.wait_for_selector("body[data-ready=true]", state="attached")
        announced: list[str] = []
        page.expose_function("announced", lambda text: announced.append(text))
        page.evaluate(
            """() => new MutationObserver(() => window.announced(
                    document.getElementById('announce').textContent))
                .observe(document.getElementById('announce'), { childList: true, subtree: true,
                                                                characterData: true })"""
        )

        # The camera: Tab to Start, Enter.
        tab_to(page, "Analyse on the server")
        tab_to(page, "Start camera")
        page.keyboard.press("Enter")
        expect(page.locator("#faces")).to_have_attribute("data-value", "1", timeout=FIRST_FACE_MS)
        expect(page.locator("#top-emotion")).to_have_text(re.compile("|".join(CLASSES)))

        # What the model saw: Space opens it, Enter closes it.
        toggle = page.locator("#seen-toggle")
        tab_to(page, "What the model saw")
        page.keyboard.press("Space")
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.locator("#seen")).to_have_attribute("data-state", "shown", timeout=20_000)
        page.screenshot(path=str(artifacts / f"keyboard-{size}-model-saw.png"))
        # With the view open (on a phone, the tallest the result sheet gets) every control is
        # still reached uncovered: back to the top, then forward to the toggle again.
        tab_to(page, "Analyse on the server", back=True)
        tab_to(page, "What the model saw")
        page.keyboard.press("Enter")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(page.locator("#seen")).to_be_hidden()

        # Results keep coming; the expression was announced once, not with every update.
        before = int(page.get_attribute("#bars", "data-updates") or 0)
        page.wait_for_function(
            f"() => Number(document.getElementById('bars').dataset.updates) > {before + 10}"
        )
        top = page.text_content("#top-emotion")
        assert announced == [f"Main face: {top}"], announced

        # Stop: back to the Stop button (Shift+Tab), Space.
        tab_to(page, "Stop camera", back=True)
        page.keyboard.press("Space")
        expect(page.locator("#top-emotion")).to_have_text("Camera off")

        # A photo: Tab to the file chooser, Enter opens it.
        tab_to(page, "choose a file")
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Enter")
        chooser.value.set_files(str(media["photo"]))
        expect(page.locator(".face-result").first).to_be_visible(timeout=30_000)

        # Where faces are analysed: the radio group, by its arrow keys.
        tab_to(page, "Analyse on the server", back=True, limit=30)
        page.keyboard.press("ArrowDown")
        expect(page.get_by_label("Analyse on this device")).to_be_checked()
        expect(page.locator("#analyse-status")).to_have_text(re.compile("on-device model"))
        page.screenshot(path=str(artifacts / f"keyboard-{size}-device.png"))
    finally:
        context.close()
