"""What one call costs through the Lambda handler (emotion.handler: Mangum, a real HTTP API v2
event, warm, one at a time), the figure the stack's throttles are sized from (infra/config.py:
FACE_CALL_S, FACES_CALL_S). Results go to stderr (the function's log lines go to stdout):

    python -m bench.handler_timing > /dev/null
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "function"), str(ROOT / "tests")]

from lambda_events import LambdaContext, http_api_event  # noqa: E402

from face_images import astronaut_face, encode  # noqa: E402
from face_scenes import group_photo  # noqa: E402


def measure(handler, event: dict, runs: int) -> str:
    times = []
    for _ in range(runs + 3):  # 3 warm-up calls
        asyncio.set_event_loop(asyncio.new_event_loop())
        started = time.perf_counter()
        result = handler(event, LambdaContext())
        times.append((time.perf_counter() - started) * 1000)
        assert result["statusCode"] == 200, result
    times = sorted(times[3:])
    p50, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    return f"p50 {p50:.1f} ms, p90 {p90:.1f} ms (n={runs})"


def main() -> None:
    from emotion.handler import handler

    crop = encode(astronaut_face().resize((144, 144)).convert("L"), "JPEG")  # a webcam crop
    photo = group_photo()[0]  # several faces
    page_photo = encode(photo.resize((1024, round(1024 * photo.height / photo.width))), "JPEG")
    phone = encode(photo.resize((4032, 3024)), "JPEG")  # what another client may send
    cases = [
        ("POST /face, 144 px crop", "/face", crop, 200),
        ("POST /faces, 1024 px photo (as the page sends it)", "/faces", page_photo, 40),
        ("POST /faces, 4032x3024 photo", "/faces", phone, 20),
    ]
    for name, path, body, runs in cases:
        figure = measure(handler, http_api_event("POST", path, body, "image/jpeg"), runs)
        print(f"{name}: {figure}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
