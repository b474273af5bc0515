"""`make bench`: our service against the seed's design, same command, same machine.

    python -m bench.run [--quick] [--out PATH] [--md PATH]

Prints a markdown table, writes the JSON (default bench/results/latest.json) and, for a full
run, bench/RESULTS.md. Both servers are measured one at a time, never concurrently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench import compute, http_load, report, size
from bench.machine import cpu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from face_images import astronaut_face, data_url, encode  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# The model the server serves: EMOTION_MODEL, as for `make run` (the served ResNet34 by default;
# EMOTION_MODEL=models/emotion-student.onnx measures the device's student on the server).
MODEL = Path(os.environ.get("EMOTION_MODEL") or ROOT / "models" / "emotion.onnx")
SITE = ROOT / "build" / "site"
BROWSER_METRICS = ROOT / "artifacts" / "browser-metrics.json"
ONDEVICE_METRICS = ROOT / "artifacts" / "ondevice.json"  # tests/browser/test_ondevice.py
# The page's targets (issue 13, issue 15): benchmark figures, not test assertions (the browser
# tests keep floors that only a broken page misses, whatever the machine's load).
BROWSER_TARGETS = {"predictions_per_second": 15, "first_prediction_s": 5.0}
DESIGNS = ("ours", "seed")
MARK = "BENCH "


@dataclass(frozen=True)
class Plan:
    warmup: int  # HTTP requests before measuring a server
    latency_n: int  # sequential requests
    throughput_s: float  # seconds per concurrency level
    concurrency: tuple[int, ...]
    lambda_n: int  # warm in-process Mangum calls
    cold_repeats: int  # fresh processes per design
    model_runs: int  # bare model inferences
    matmul_size: int
    matmul_repeats: int


FULL = Plan(10, 200, 10.0, (1, 4, 16), 100, 5, 200, 2048, 10)
QUICK = Plan(2, 8, 0.5, (1, 4, 16), 4, 1, 10, 2048, 2)


def machine() -> dict:
    fields = {}
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in lscpu.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    info = cpu()
    return {
        "cpu": info["model"] if info["model"] != "?" else fields.get("Model name", "unknown"),
        "vnni": info["vnni"],
        "cpu_flags": info["flags"],
        "cores": len(os.sched_getaffinity(0)),
        "threads_per_core": fields.get("Thread(s) per core", "?"),
        "loadavg_start": list(os.getloadavg()),
        "python": platform.python_version(),
    }


def face_request() -> tuple[bytes, str]:
    """The seed client's request: form field imgBase64 = a data URL of one face crop."""
    face = astronaut_face()
    png = encode(face)
    body = urlencode({"imgBase64": data_url(png)}).encode()
    describe = (
        f"one face crop (scikit-image's astronaut, {face.width}x{face.height} {face.mode} PNG, "
        f"{len(png):,} bytes) as the form field `imgBase64` (data URL), {len(body):,} bytes "
        "form-encoded, identical for both designs"
    )
    return body, describe


def export_seed(folder: Path, runs: int) -> dict:
    """Export the seed's learner (a subprocess: this process never imports torch)."""
    command = [sys.executable, "-m", "bench.seed_app", str(folder), str(runs)]
    done = subprocess.run(command, env=http_load.server_env({}), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"seed export failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def server_setup(design: str, learner: str) -> tuple[str, dict[str, str]]:
    if design == "ours":  # as `make run` serves it
        extra = {"EMOTION_STATIC_DIR": str(SITE)} if SITE.is_dir() else {}
        return "emotion.app:create_app", http_load.server_env(extra)
    return "bench.seed_app:create_app", http_load.server_env({"SEED_LEARNER": learner})


def measure_http(design: str, learner: str, body: bytes, plan: Plan, log: Path) -> dict:
    app, env = server_setup(design, learner)
    with http_load.uvicorn_server(app, env, log) as port:
        answer = json.loads(http_load.warm_up(port, body, plan.warmup))
        if len(answer.get("predictions", {})) != 8:
            raise RuntimeError(f"{design} answered without 8 predictions: {answer}")
        latency = http_load.sequential(port, body, plan.latency_n)
        levels = {
            str(c): http_load.throughput(port, body, c, plan.throughput_s) for c in plan.concurrency
        }
    return {"latency_ms": latency, "throughput": levels}


def run_worker(design: str, learner: str, body_file: Path, warm_runs: int) -> dict:
    """A fresh process: wall time until it has imported the handler and answered once,
    then (optionally) its warm in-process Mangum timings."""
    env = http_load.server_env({"SEED_LEARNER": learner})
    command = [sys.executable, "-m", "bench.worker", design, str(body_file), str(warm_runs)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    reports, wall = [], None
    for line in proc.stdout:
        if MARK in line:
            reports.append(json.loads(line[line.index(MARK) + len(MARK) :]))
            wall = wall or time.perf_counter() - started
    if proc.wait() or not reports or reports[0]["status"] != 200:
        raise RuntimeError(f"{design} worker failed (exit {proc.returncode}): {reports}")
    return {"wall_s": wall, "cold": reports[0], "warm": reports[1] if len(reports) > 1 else None}


def measure_lambda_and_cold(learner: str, body_file: Path, plan: Plan) -> dict[str, dict]:
    """Cold starts alternate between the designs; the first process of each also runs the
    warm Lambda path after its cold answer."""
    runs: dict[str, list[dict]] = {d: [] for d in DESIGNS}
    for repeat in range(plan.cold_repeats):
        for design in DESIGNS:
            warm = plan.lambda_n if repeat == 0 else 0
            runs[design].append(run_worker(design, learner, body_file, warm))
    out = {}
    for design, results in runs.items():
        warm = results[0]["warm"]
        out[design] = {
            "lambda": {
                "n": len(warm["ms"]),
                "errors": warm["errors"],
                **http_load.percentiles(warm["ms"]),
            },
            "cold_start": {
                "median_s": statistics.median(r["wall_s"] for r in results),
                "runs_s": [r["wall_s"] for r in results],
                "import_s": statistics.median(r["cold"]["import_s"] for r in results),
                "first_s": statistics.median(r["cold"]["first_request_s"] for r in results),
            },
        }
    return out


def browser() -> dict:
    if not BROWSER_METRICS.is_file():
        return {"status": "not measured"}
    metrics = json.loads(BROWSER_METRICS.read_text())
    return {
        "status": "measured",
        "predictions_per_second": metrics["predictions_per_second_measured_by_test"],
        "shown_by_page": metrics.get("predictions_per_second_shown_by_page"),
        "round_trip_ms_shown_by_page": metrics.get("round_trip_ms_shown_by_page"),
        "file_date": time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(BROWSER_METRICS.stat().st_mtime)
        ),
        "source": str(BROWSER_METRICS.relative_to(ROOT)),
        "targets": BROWSER_TARGETS,
        "ondevice": ondevice(),
    }


def ondevice() -> dict:
    live = (
        json.loads(ONDEVICE_METRICS.read_text()).get("live") if ONDEVICE_METRICS.is_file() else None
    )
    if not live:
        return {"status": "not measured"}
    return {
        "status": "measured",
        "predictions_per_second": live["predictions_per_second"],
        "first_prediction_s": live["first_prediction_s_after_start_warm_cache"],
        "source": str(ONDEVICE_METRICS.relative_to(ROOT)),
    }


def run(plan: Plan, quick: bool, log_dir: Path) -> dict:
    body, describe = face_request()
    body_file = log_dir / "request-body.txt"
    body_file.write_bytes(body)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "mode": "quick" if quick else "full",
        "command": (
            "EMOTION_MODEL=" + os.environ["EMOTION_MODEL"] + " "
            if "EMOTION_MODEL" in os.environ
            else ""
        )
        + "python -m bench.run"
        + (" --quick" if quick else ""),
        "machine": machine(),
        "plan": asdict(plan),
        "payload": {"describe": describe, "bytes": len(body)},
    }
    step("function sizes")
    ours_size = size.ours(MODEL, RESULTS / "size-cache.json", allow_pip=not quick)
    step("seed design: exporting its learner")
    seed_model = export_seed(log_dir / "seed", max(3, plan.model_runs // 10))
    learner = seed_model.pop("learner")
    designs: dict[str, dict] = {
        "ours": {
            "describe": "`function/emotion` as `make run` serves it: Starlette + ONNX Runtime, "
            f"{served_model()}, one uvicorn worker",
            "size": ours_size,
        },
        "seed": {
            "describe": "fastai `vision_learner(resnet34, pretrained=False)` at 196x196 RGB "
            "(random weights), `learner.predict` per request, Starlette `/face` reading the "
            "form field `imgBase64`, one uvicorn worker (bench/seed_app.py)",
            "size": size.seed(seed_model["learner_bytes"]),
            "model": seed_model,
        },
    }
    for design in DESIGNS:
        step(f"{design}: HTTP latency and throughput")
        log = log_dir / f"{design}-server.log"
        designs[design]["http"] = measure_http(design, learner, body, plan, log)
    step("Lambda path and cold starts")
    for design, figures in measure_lambda_and_cold(learner, body_file, plan).items():
        designs[design].update(figures)
    step("model FLOPs, ms and this CPU's matmul throughput")
    designs["ours"]["model"] = compute.model_figures(MODEL, astronaut_face(), plan.model_runs)
    matmul = compute.matmul_gflops(plan.matmul_size, plan.matmul_repeats)
    seed_model["gflops_per_s"] = seed_model["flops"] / seed_model["forward_ms_p50"] / 1e6
    for design in DESIGNS:
        model = designs[design]["model"]
        model["fraction_of_matmul"] = model["gflops_per_s"] / matmul["best"]
    results.update(designs=designs, matmul_gflops=matmul, browser=browser())
    results["ratios"] = report.ratios(results)
    return results


def step(what: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def served_model() -> str:
    """'emotion-resnet34 (emotion.onnx) at 64x64 L, mirror TTA in the graph', from its card."""
    card = json.loads(MODEL.with_suffix(".json").read_text())
    passes = "mirror TTA in the graph" if card.get("flip_tta") else "one pass a face"
    side = card["input_size"]
    return f"{card['name']} ({MODEL.name}) at {side}x{side} {card['color_mode']}, {passes}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (for tests)")
    parser.add_argument("--out", type=Path, help="JSON results (bench/results/latest.json)")
    parser.add_argument("--md", type=Path, help="markdown page (full run: bench/RESULTS.md)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    md = args.md or (None if args.quick else ROOT / "bench" / "RESULTS.md")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results = run(plan, args.quick, Path(tmp))
    results["bench_seconds"] = time.perf_counter() - started
    page = report.markdown(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if md:
        md.write_text(page)
    print(page)
    print(f"JSON: {out}" + (f"; markdown: {md}" if md else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
