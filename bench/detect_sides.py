"""`make bench` (part): the face detector's time and recall per detection side.

    python -m bench.detect_sides [--repeat 30] [--quick]

For each longer side /faces could shrink photos to (EMOTION_DETECT_SIDE): the median time of
`FaceDetector.detect` (shrink included) on tests/face_scenes.py's 1280x720 trio photo, the
/faces benchmark's request; and on its group photo (eight faces, 40-150 px, some turned up
to 45 degrees) the weakest face's score (each true face's best-scoring matching box, found at
a threshold of 0.02 so a face under 0.5 still shows its score), how many of the eight are
found at the shipped threshold (0.5) and how many other boxes there are. Also the trio
photo's shrink to the default side: `shrink` against one Pillow BILINEAR resize.

Writes bench/results/detect-sides.json and prints a markdown table. A benchmark, not a test:
run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

from emotion.detect import PHOTO_SIDE, FaceDetector, default_model_path, shrink

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from face_scenes import best_scores, group_photo, matches, trio_photo  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SIDES = (1280, 1152, 1024, 960)
LOW_THRESHOLD = 0.02  # to read the score of a face the shipped threshold would drop


def detect_ms(detector: FaceDetector, image, side: int, repeat: int) -> list[float]:
    detector.detect(image, max_side=side)  # warm-up: this side's anchors and buffers
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        detector.detect(image, max_side=side)
        times.append((time.perf_counter() - started) * 1000)
    return times


def resize_ms(repeat: int) -> dict:
    """The default side's shrink of the trio photo, ours against one bilinear resize."""
    trio, _ = trio_photo()
    scale = PHOTO_SIDE / max(trio.size)
    size = (round(trio.width * scale), round(trio.height * scale))

    def p50(resize) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            resize()
            times.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(times), 3)

    return {
        "from": list(trio.size),
        "to": list(size),
        "shrink_ms_p50": p50(lambda: shrink(trio, size)),
        "bilinear_ms_p50": p50(lambda: trio.resize(size, Image.Resampling.BILINEAR)),
    }


def recall(detector: FaceDetector, side: int) -> dict:
    photo, truth = group_photo()
    scores = best_scores(detector.detect(photo, max_side=side, threshold=LOW_THRESHOLD), truth)
    found = detector.detect(photo, max_side=side)  # the shipped threshold
    matched = [t for t in truth if any(matches(f.as_box(), t) for f in found)]
    others = [f for f in found if not any(matches(f.as_box(), t) for t in truth)]
    return {
        "weakest_score": round(min(scores), 4),
        "scores": [round(s, 4) for s in scores],
        "found": len(matched),
        "faces": len(truth),
        "other_boxes": len(others),
    }


def measure(detector: FaceDetector, sides: tuple[int, ...], repeat: int) -> dict:
    trio, _ = trio_photo()
    rows = {}
    for side in sides:
        times = detect_ms(detector, trio, side, repeat)
        rows[str(side)] = {
            "detect_ms_p50": round(statistics.median(times), 2),
            "detect_ms_min": round(min(times), 2),
            "runs": repeat,
            "group": recall(detector, side),
        }
    return rows


def table(result: dict) -> str:
    lines = [
        "| side | detect p50, trio 1280x720 | group: weakest face's score | group: found at "
        f"{result['threshold']} | other boxes |",
        "|---|---|---|---|---|",
    ]
    for side, row in result["sides"].items():
        group = row["group"]
        mark = " (default)" if int(side) == result["default_side"] else ""
        lines.append(
            f"| {side}{mark} | {row['detect_ms_p50']} ms | {group['weakest_score']} | "
            f"{group['found']} / {group['faces']} | {group['other_boxes']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=30, help="timed detections per side")
    p.add_argument("--sides", type=int, nargs="+", default=list(SIDES))
    p.add_argument("--quick", action="store_true", help="a smoke run: 3 detections per side")
    p.add_argument("--out", type=Path, default=RESULTS / "detect-sides.json")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat = 3
    threads = int(os.environ.get("EMOTION_THREADS", 0))  # as the server: 0, one per core
    detector = FaceDetector(Path(os.environ.get("EMOTION_DETECTOR", default_model_path())), threads)
    result = {
        "loadavg_start": list(os.getloadavg()),
        "cores": len(os.sched_getaffinity(0)),
        "detector": detector.label,
        "default_side": PHOTO_SIDE,
        "threshold": detector.threshold,
        "sides": measure(detector, tuple(args.sides), args.repeat),
        "resize": resize_ms(args.repeat),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    r = result["resize"]
    print(f"\nshrink {r['from'][0]}x{r['from'][1]} -> {r['to'][0]}x{r['to'][1]}: "
          f"{r['shrink_ms_p50']} ms; one BILINEAR resize: {r['bilinear_ms_p50']} ms")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
