"""Recall of the page's face proposals (tracking.js, through site/js/faces.js) on the test
scenes, in real Chromium, for one or more settings. A command, so that it can be re-run:

    PYTHONPATH=function:. .venv/bin/python -m tests.browser.recall            # the live settings
    PYTHONPATH=function:. .venv/bin/python -m tests.browser.recall --sweep    # a grid of settings

A face counts as found when a proposal's centre lies inside its box and the proposal is 0.5 to
1.6 times its width. Timings printed are per detection in the browser's worker; they are only
meaningful on an idle machine."""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import io
import itertools
import json
import os
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.scenes import FPS, NOBODY, SCENES, frames

ALL = {**SCENES, NOBODY.name: NOBODY}

ROOT = Path(__file__).resolve().parents[2]
SITE_BUILD = ROOT / "build" / "site"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PHASES = 8  # frames per scene, spread over its loop

DETECT_JS = """
async ({ frames, width, options }) => {
  const { FaceDetector } = await import('./js/faces.js');
  const detector = new FaceDetector({ width, options });
  const out = [];
  for (const url of frames) {
    const image = new Image();
    image.src = url;
    await image.decode();
    const started = performance.now();
    const boxes = await detector.detect(image, image.naturalWidth, image.naturalHeight,
      { limit: 12 });
    out.push({ boxes, ms: performance.now() - started });
  }
  return out;
}
"""


def matches(box: dict, face: tuple[float, ...]) -> bool:
    cx = box["x"] + box["width"] / 2
    cy = box["y"] + box["height"] / 2
    fw = face[2] - face[0]
    inside = face[0] <= cx <= face[2] and face[1] <= cy <= face[3]
    return inside and 0.5 * fw <= box["width"] <= 1.6 * fw


@functools.cache
def scene_frames(name: str) -> list[tuple[str, list[tuple[float, ...]]]]:
    out = []
    for image, boxes in frames(ALL[name], FPS)[:: FPS // PHASES]:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), boxes))
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log on the console
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def measure(page, width: int, options: dict) -> dict:
    """Per scene and per face: how often it was found; proposals that match no face."""
    result = {"width": width, "options": options, "scenes": {}}
    found_all = total_all = false_all = 0
    times: list[float] = []
    for name in ALL:
        shots = scene_frames(name)
        runs = page.evaluate(
            DETECT_JS, {"frames": [u for u, _ in shots], "width": width, "options": options}
        )
        per_face = [0] * len(shots[0][1])
        false = 0
        totals: dict[str, list[int]] = {"faces": [], "false": []}
        for run, (_, faces) in zip(runs, shots, strict=True):
            times.append(run["ms"])
            for k, face in enumerate(faces):
                per_face[k] += any(matches(b, face) for b in run["boxes"])
            for b in run["boxes"]:
                hit = any(matches(b, f) for f in faces)
                false += not hit
                totals["faces" if hit else "false"].append(b.get("total", 1))
        result["scenes"][name] = {
            "found": per_face,
            "frames": len(shots),
            "false": false,
            # How many detector windows agreed on each box, for faces and for the rest.
            "windows": {k: sorted(v) for k, v in totals.items()},
        }
        false_all += false
        found_all += sum(per_face)  # a scene with no one adds only its false proposals
        total_all += len(per_face) * len(shots)
    result["recall"] = round(found_all / total_all, 3)
    result["false_per_frame"] = round(false_all / (len(times) or 1), 2)
    result["ms_median"] = round(sorted(times)[len(times) // 2], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="try a grid of settings")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    assert (SITE_BUILD / "vendor" / "tracking-min.js").is_file(), "run `make site` first"
    httpd, url = serve(SITE_BUILD)
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.goto(url + "index.html")
        live = page.evaluate("async () => (await import('./js/live.js')).DETECTION")
        if args.sweep:
            grid = itertools.product((320, 480, 640), (1.0, 1.25, 1.5), (1.5, 2.0), (0.1, 0.2))
            settings = [
                (w, {"initialScale": s, "stepSize": st, "edgesDensity": e, "scaleFactor": 1.25})
                for w, s, st, e in grid
            ]
        else:
            settings = [(args.width or live["width"], live["options"])]
        for width, options in settings:
            r = measure(page, width, options)
            results.append(r)
            print(json.dumps({k: r[k] for k in r if k != "scenes"}), json.dumps(r["scenes"]))
        browser.close()
    httpd.shutdown()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
