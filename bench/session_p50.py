"""One face through the bare ONNX Runtime session, two models interleaved in one run.

    python -m bench.session_p50 models/emotion.onnx OTHER.onnx [--runs 300]

Both models load as the service loads them (EmotionModel: its threads and options); each
round times one single-face `session.run` of each, alternating, so both see the same machine
state. Prints p50/p90 in ms per model and the CPU it ran on. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from bench.machine import cpu, describe
from emotion.model import EmotionModel
from emotion.preprocess import to_input


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--runs", type=int, default=300)
    args = p.parse_args(argv)

    models = [EmotionModel(path) for path in args.models]
    face = Image.fromarray(skdata.astronaut()).crop((140, 20, 260, 140))  # a real face
    inputs = [to_input([face], m.card) for m in models]
    times: list[list[float]] = [[] for _ in models]
    for _ in range(args.runs):
        for i, (model, batch) in enumerate(zip(models, inputs, strict=True)):
            started = time.perf_counter()
            model.session.run(None, {model.input_name: batch})
            times[i].append((time.perf_counter() - started) * 1000)
    print(describe(cpu()))
    for path, ms in zip(args.models, times, strict=True):
        print(f"{path}: p50 {np.percentile(ms, 50):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms")


if __name__ == "__main__":
    main()
