"""ONNX Runtime's thread settings against single-request latency: the classifier on one face and
the detector on /face's 160 px crop check, one Run at a time with a pause between (as
sequential HTTP requests arrive), per setting: p50 milliseconds a Run and the process's CPU
milliseconds a Run (what spinning threads cost).

    python -m bench.session_threads [--runs 300]

The settings: emotion.sessions.cpu_options (spin while a Run lasts, stop when it returns),
the same threads never spinning (the setting before 2026-12-07), spinning throughout, and
one thread. A benchmark, not a test: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from emotion.detect import CROP_SIDE, default_model_path
from emotion.model import EmotionModel
from emotion.preprocess import to_input
from emotion.sessions import cpu_options
from emotion.settings import Settings

PAUSE_S = 0.002


def variant(threads: int, spin: bool, stop: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1" if stop else "0")
    return options


def settings() -> dict[str, ort.SessionOptions]:
    return {
        "spin while a Run lasts (served)": cpu_options(),
        "never spin (before)": variant(0, spin=False, stop=False),
        "spin throughout": variant(0, spin=True, stop=False),
        "one thread": variant(1, spin=False, stop=False),
    }


def timed(session: ort.InferenceSession, batch: np.ndarray, runs: int) -> dict[str, float]:
    feed = {session.get_inputs()[0].name: batch}
    for _ in range(30):
        session.run(None, feed)
    times, cpu = [], time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(PAUSE_S)
    return {
        "p50_ms": round(statistics.median(times), 3),
        "cpu_ms_a_run": round((time.process_time() - cpu) * 1000 / runs, 3),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=300)
    args = p.parse_args(argv)
    model_path = Settings.from_env().model_path
    face = Image.new("L", (120, 120), 128)
    models = {
        f"classifier ({Path(model_path).name}, one face)": (
            Path(model_path),
            to_input([face], EmotionModel(model_path).card),
        ),
        f"detector ({CROP_SIDE} px crop check)": (
            default_model_path(),
            np.zeros((1, 3, CROP_SIDE, CROP_SIDE), np.float32),
        ),
    }
    results = {}
    print("| model | setting | p50 a Run | CPU a Run |\n|---|---|---|---|")
    for model, (path, batch) in models.items():
        for setting, options in settings().items():
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            figures = timed(session, batch, args.runs)
            results.setdefault(model, {})[setting] = figures
            p50, cpu = figures["p50_ms"], figures["cpu_ms_a_run"]
            print(f"| {model} | {setting} | {p50} ms | {cpu} ms |")
    out = Path(__file__).resolve().parent / "results" / "session-threads.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
