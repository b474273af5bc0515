"""A phone-sized photo (4.4 MB, 4032x3024) is shrunk by the page before it goes to /faces: a
JPEG whose longer side is the detector's (site/js/limits.js), far under the stack's 4 MB
limit, and its faces are still found and read."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from infra.config import LIMITS_JS, MAX_BODY_BYTES, page_constant


def test_a_large_photo_is_sent_shrunk_to_the_detector_side(page, console, server, media, tmp_path):
    photo = Image.open(media["photo"]).convert("RGB").resize((4032, 3024))
    grain = np.random.default_rng(0).normal(0, 12, (3024, 4032, 3))  # sensor noise: a big file
    pixels = np.clip(np.asarray(photo, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, "JPEG", quality=92)
    assert path.stat().st_size > MAX_BODY_BYTES  # as sent untouched, AWS would refuse it

    # What the page hands fetch() for /faces (Playwright does not expose a Blob request body).
    page.add_init_script(
        """(() => {
            const real = window.fetch;
            window.__sent = [];
            window.fetch = (url, init = {}) => {
                if (String(url).includes('faces') && init.body instanceof Blob) {
                    window.__sent.push(init.body);
                }
                return real(url, init);
            };
        })()"""
    )
    page.goto(server)
    page.set_input_files("#file", str(path))
    expect(page.locator(".face-result").first).to_be_visible(timeout=60_000)
    expect(page.locator("#upload-status")).to_have_text(
        re.compile(r"Found \d+ faces? in the photo")
    )

    sent = page.evaluate(
        """async () => Promise.all(window.__sent.map(async (blob) => ({
            type: blob.type,
            bytes: Array.from(new Uint8Array(await blob.arrayBuffer())),
        })))"""
    )
    assert sent and sent[-1]["type"] == "image/jpeg"
    body = bytes(sent[-1]["bytes"])
    assert len(body) < MAX_BODY_BYTES // 4, f"{len(body):,} bytes sent"
    shrunk = Image.open(io.BytesIO(body))
    assert max(shrunk.size) == page_constant(LIMITS_JS, "PHOTO_SEND_SIDE")
    assert shrunk.size[0] / shrunk.size[1] == 4032 / 3024
    assert console.errors == []
