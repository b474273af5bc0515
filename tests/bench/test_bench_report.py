"""The bench's verdicts and machine line, on figures made by hand."""

from __future__ import annotations

import pytest

from bench import report
from bench.machine import describe, parse_cpuinfo


def results_with(latency: tuple, throughput: tuple, cold: tuple, size: tuple) -> dict:
    def design(i: int) -> dict:
        return {
            "http": {
                "latency_ms": {"p50": latency[i]},
                "throughput": {"4": {"faces_per_s": throughput[i]}},
            },
            "cold_start": {"median_s": cold[i]},
            "size": {"bytes": size[i]},
        }

    return {"designs": {"ours": design(0), "seed": design(1)}}


def test_ratios_are_ours_over_seed_and_judged_by_their_targets():
    rows = report.ratios(
        results_with(latency=(10, 70), throughput=(50, 10), cold=(1, 4), size=(300, 1000))
    )
    assert {k: round(r["ratio"], 4) for k, r in rows.items()} == {
        "latency_p50": 0.1429,  # 1/7 <= 1/6
        "throughput_c4": 5.0,  # 5x < 6x
        "cold_start": 0.25,  # exactly 1/4 counts
        "size": 0.3,  # > 1/5
    }
    assert {k: r["pass"] for k, r in rows.items()} == {
        "latency_p50": True,
        "throughput_c4": False,
        "cold_start": True,
        "size": False,
    }


def test_a_missing_figure_is_a_miss_not_a_pass():
    rows = report.ratios(results_with((0, 70), (50, 10), (1, 4), (300, 1000)))
    assert rows["latency_p50"]["ratio"] is None and rows["latency_p50"]["pass"] is False


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: fpu sse2 avx avx2 {extra}

processor\t: 1
model name\t: {model}
flags\t\t: fpu sse2 avx avx2 {extra}
"""


@pytest.mark.parametrize(
    ("model", "extra", "vnni", "said"),
    [
        ("AMD EPYC 7B13", "", False, "VNNI: no"),
        ("AMD EPYC", "avx512f avx512_bf16 avx512_vnni", True, "VNNI: yes (avx512_vnni)"),
        ("13th Gen Intel(R) Core(TM) i7-1365U", "avx_vnni", True, "VNNI: yes (avx_vnni)"),
    ],
)
def test_the_cpu_is_named_with_its_vnni_flag(model, extra, vnni, said):
    info = parse_cpuinfo(CPUINFO.format(vendor="x", model=model, extra=extra))
    assert (info["model"], info["vnni"]) == (model, vnni)
    assert describe({**info, "cores": 2}) == f"{model}, 2 cores, {said}"
