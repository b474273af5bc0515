"""`python -m bench.run --quick` end to end: every figure, for both designs, in the JSON,
the markdown page and the printed table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.machine import cpu

ROOT = Path(__file__).resolve().parents[2]
DESIGNS = ("ours", "seed")
RATIOS = {"latency_p50", "throughput_c4", "cold_start", "size"}


def test_quick_bench_reports_every_figure_for_both_designs(tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "RESULTS.md"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "function"), str(ROOT)])}
    command = [sys.executable, "-m", "bench.run", "--quick", "--out", str(out), "--md", str(md)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())

    for design in DESIGNS:
        figures = results["designs"][design]
        latency = figures["http"]["latency_ms"]
        assert latency["errors"] == 0
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
        for concurrency in ("1", "4", "16"):
            level = figures["http"]["throughput"][concurrency]
            assert level["errors"] == 0 and level["faces_per_s"] > 0, (design, level)
        assert figures["lambda"]["errors"] == 0 and figures["lambda"]["p50"] > 0
        assert figures["cold_start"]["median_s"] > figures["cold_start"]["import_s"] > 0
        assert figures["size"]["bytes"] > figures["size"]["model_bytes"] > 0
        assert figures["model"]["flops"] > 0 and figures["model"]["gflops_per_s"] > 0

    ours = results["designs"]["ours"]["model"]
    assert ours["infer_ms_p50"] > 0 and ours["fraction_of_matmul"] > 0
    assert results["matmul_gflops"]["best"] > 0
    assert results["designs"]["ours"]["http"]["latency_ms"]["server_timing_p50_ms"]["infer"] > 0
    assert set(results["ratios"]) == RATIOS
    pairs = report.figure_pairs(results)
    for key, _, sense, target, _ in report.TARGETS:
        row, (ours_figure, seed_figure) = results["ratios"][key], pairs[key]
        assert row["ratio"] == pytest.approx(ours_figure / seed_figure), key
        assert row["pass"] is (row["ratio"] <= target if sense == "<=" else row["ratio"] >= target)
    assert results["browser"]["status"] in ("measured", "not measured")

    machine = results["machine"]
    assert (machine["cpu"], machine["vnni"]) == (cpu()["model"], cpu()["vnni"])

    page = md.read_text()
    assert page in done.stdout  # the printed table is the page
    assert f"Machine: {machine['cpu']}, " in page
    assert ("VNNI: yes (" if machine["vnni"] else "VNNI: no,") in page
    for row in results["ratios"].values():  # each ratio's verdict is the one on the page
        assert f"| {row['target']} | {'PASS' if row['pass'] else 'MISS'} |" in page
    for label in ("p50 latency", "concurrency 16", "Lambda path", "cold start", "function size"):
        assert label in page
    assert page.count("PASS") + page.count("MISS") == len(RATIOS)
