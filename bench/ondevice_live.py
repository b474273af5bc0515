"""`make bench` (part): the live view in on-device mode, with every crop checked by the page's
copy of the server's face detector (issue 22's target: >= 15 predictions/s for one face in
headless Chromium on a 2-core machine, the first prediction within 2 s of Start, warm cache).

    python -m bench.ondevice_live [--seconds 10] [--quick] [--out FILE]

Serves build/site with the app (as `make run`; run `make site` first), plays scikit-image's
astronaut as the camera (the browser tests' swaying window), chooses "Analyse on this device"
and waits for the models, reloads (the models now come from Cache Storage), clicks Start and
measures the seconds to the first prediction and the predictions per second over `--seconds`
(the page's own count of verified faces' answers). Also the worker's time per crop with and
without the check (median of `--repeat` crops of the astronaut's face). Writes
bench/results/ondevice-live.json. A benchmark, not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, astronaut, camera_frames, chromium_args, write_y4m

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
RESULTS = ROOT / "bench" / "results"

# The worker's time per crop: one crop of the astronaut's face (25% margin, as the live view
# sends), classified as it is and checked then classified.
CROP_TIMES = """async ([b64, repeat]) => {
  const { Analyser } = await import('./js/ondevice.js');
  const analyser = new Analyser({});
  analyser.setMode('device');
  await analyser.load();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
  const square = { x: 0, y: 0, width: bitmap.width, height: bitmap.height };
  const size = { sourceWidth: bitmap.width, sourceHeight: bitmap.height };
  const times = { classify: [], check: [] };
  for (let i = 0; i < repeat; i += 1) {
    for (const check of [false, true]) {
      const started = performance.now();
      await analyser.classify(bitmap, square, { ...size, check });
      times[check ? 'check' : 'classify'].push(performance.now() - started);
    }
  }
  return times;
}"""


@contextmanager
def serving():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "EMOTION_STATIC_DIR": str(SITE),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)])}  # fmt: skip
    command = [sys.executable, "-m", "uvicorn", "emotion.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("bench.ondevice_live: the server did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def measure(url: str, video: Path, seconds: float, repeat: int) -> dict:
    photo = astronaut()
    crop = photo.crop((222 - 80, 115 - 80, 222 + 80, 115 + 80))  # the face, 25% margin
    buffer = io.BytesIO()
    crop.save(buffer, "PNG")
    face_requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(video))
        context = browser.new_context()
        context.grant_permissions(["camera"], origin=url.rstrip("/"))
        page = context.new_page()
        api = ("/face", "/faces")
        page.on("request", lambda r: r.url.endswith(api) and face_requests.append(r.url))
        page.goto(url)
        started = time.perf_counter()
        page.get_by_label("Analyse on this device").check()
        ready = "() => document.getElementById('analyse-status').dataset.state === 'ready'"
        page.wait_for_function(ready, timeout=300_000)
        cold_load = time.perf_counter() - started
        page.reload()  # a later visit: both models from Cache Storage
        page.wait_for_function(ready, timeout=300_000)
        clicked = time.perf_counter()
        page.click("#start")
        page.wait_for_function(
            "() => Number(document.getElementById('bars').dataset.updates) > 0", timeout=300_000
        )
        first = time.perf_counter() - clicked
        count = lambda: int(page.get_attribute("#rate", "data-count") or 0)  # noqa: E731
        page.wait_for_timeout(1000)
        before, t0 = count(), time.perf_counter()
        page.wait_for_timeout(seconds * 1000)
        rate = (count() - before) / (time.perf_counter() - t0)
        faces = int(page.get_attribute("#faces", "data-value") or 0)
        page.click("#stop")
        times = page.evaluate(CROP_TIMES, [base64.b64encode(buffer.getvalue()).decode(), repeat])
        browser.close()
    return {
        "predictions_per_second": round(rate, 2),
        "first_prediction_s_after_start_warm_cache": round(first, 2),
        "cold_model_load_s": round(cold_load, 2),
        "faces_shown": faces,
        "face_requests": len(face_requests),
        "worker_ms_per_crop": {
            "classify_p50": round(statistics.median(times["classify"]), 1),
            "check_then_classify_p50": round(statistics.median(times["check"]), 1),
            "crop": f"{crop.width}x{crop.height}",
            "runs": repeat,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="2 s and 3 crops: that it runs")
    p.add_argument("--out", type=Path, default=RESULTS / "ondevice-live.json")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.repeat = 2.0, 3
    if not (SITE / "index.html").is_file():
        raise SystemExit(f"{SITE} is missing: run `make site` first")
    with tempfile.TemporaryDirectory() as tmp, serving() as url:
        video = write_y4m(Path(tmp) / "face.y4m", camera_frames(astronaut()))
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python -m bench.ondevice_live" + (" --quick" if args.quick else ""),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cores": len(os.sched_getaffinity(0)),
            **measure(url, video, args.seconds, args.repeat),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
