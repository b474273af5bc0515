"""The CPU a figure was measured on: model name and whether it has VNNI.

Timings (and int8 accuracy: without VNNI, ONNX Runtime's u8s8 products can saturate) differ
between CPUs of the same family, so every published figure names the CPU it came from.

    python -m bench.machine     prints {"model": ..., "vnni": ..., ...} as JSON
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

# /proc/cpuinfo flags for 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI on AVX2 cores).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_int8", *VNNI_FLAGS)


def parse_cpuinfo(text: str) -> dict:
    """The first processor's model name and flags (x86 `flags`, Arm `Features`)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "model": fields.get("model name") or fields.get("Model") or platform.processor() or "?",
        "vnni": any(f in flags for f in VNNI_FLAGS),
        "flags": [f for f in SHOWN_FLAGS if f in flags],
    }


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    return {**parse_cpuinfo(text), "cores": len(os.sched_getaffinity(0))}


def describe(info: dict) -> str:
    """'AMD EPYC, 2 cores, VNNI: yes (avx512_vnni)': how a page names the machine."""
    vnni = [f for f in info["flags"] if f in VNNI_FLAGS]
    said = f"yes ({', '.join(vnni)})" if vnni else "no"
    return f"{info['model']}, {info['cores']} cores, VNNI: {said}"


if __name__ == "__main__":
    print(json.dumps(cpu(), indent=2))
