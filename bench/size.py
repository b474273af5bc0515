"""What each design's function installs: runtime dependencies + model + code."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "function" / "requirements.txt"
SEED_PACKAGES = ("fastai", "torch", "torchvision", "starlette", "mangum", "python-multipart")
SEED_PACKAGES += ("pillow",)
# What a CPU-only torch would not carry: CUDA wheels and torch's own CUDA libraries.
GPU_DISTS = ("nvidia-", "cuda-", "triton")
GPU_LIB_WORDS = ("cuda", "nvshmem", "nvrtc", "cudnn", "nccl")


def tree_bytes(path: Path, pycache: bool = True) -> int:
    """Bytes of the regular files under path (without __pycache__ folders if not pycache)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if pycache or d != "__pycache__"]
        for name in files:
            file = Path(folder) / name
            if file.is_file() and not file.is_symlink():
                total += file.stat().st_size
    return total


def dependency_closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions `names` need, transitively (extras not included)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(requirement.name)
    return found


def _is_gpu_file(dist_name: str, relative: str) -> bool:
    if dist_name.startswith(GPU_DISTS):
        return True
    name = relative.rsplit("/", 1)[-1].lower()
    return dist_name == "torch" and "/lib/" in relative and any(w in name for w in GPU_LIB_WORDS)


def record_bytes(names: list[str]) -> dict[str, int]:
    """Sum of the files each distribution's RECORD lists, in this venv: all of them, and
    without GPU-only files (a CPU-only torch install)."""
    total = cpu_only = 0
    for dist_name, dist in dependency_closure(names).items():
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if not path.is_file():
                continue
            size = path.stat().st_size
            total += size
            if not _is_gpu_file(dist_name, str(file)):
                cpu_only += size
    return {"all": total, "cpu_only": cpu_only}


def requirement_names(path: Path = REQUIREMENTS) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(Requirement(line).name)
    return names


def pip_target_bytes(cache: Path) -> int:
    """`pip install --target` of function/requirements.txt into a temporary folder, cached
    (keyed by the requirements, Python and platform) because it takes a minute."""
    stamp = f"v2 {REQUIREMENTS.read_text()} {sys.version} {platform.platform()}"
    key = hashlib.sha256(stamp.encode()).hexdigest()
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return int(cached["bytes"])
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", target]
        done = subprocess.run([*command, "-r", str(REQUIREMENTS)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pip install --target failed:\n{done.stderr[-3000:]}")
        size = tree_bytes(Path(target))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "bytes": size}) + "\n")
    return size


def ours(model: Path, cache: Path, allow_pip: bool) -> dict:
    """Deps by pip --target (or from the cache, or, when pip is not allowed and nothing is
    cached, from the venv's RECORD files) + the ONNX model and its card + the package."""
    code = tree_bytes(ROOT / "function" / "emotion", pycache=False)
    model_bytes = tree_bytes(model) + tree_bytes(model.with_suffix(".json"))
    if allow_pip or cache.is_file():
        deps = pip_target_bytes(cache)
        method = "pip install --target of function/requirements.txt"
    else:
        deps = record_bytes(requirement_names())["all"]
        method = "sum of RECORD files in .venv for function/requirements.txt's closure"
    return {
        "bytes": deps + model_bytes + code,
        "deps_bytes": deps,
        "model_bytes": model_bytes,
        "code_bytes": code,
        "method": method + f" + models/{model.name} + .json + function/emotion",
        "record_check_bytes": record_bytes(requirement_names())["all"] + model_bytes + code,
    }


def seed(learner_bytes: int) -> dict:
    deps = record_bytes(list(SEED_PACKAGES))
    return {
        "bytes": deps["cpu_only"] + learner_bytes,
        "bytes_with_cuda": deps["all"] + learner_bytes,
        "deps_bytes": deps["cpu_only"],
        "model_bytes": learner_bytes,
        "method": "sum of RECORD files in .venv for the closure of "
        + "+".join(SEED_PACKAGES)
        + ", without CUDA files (nvidia-*, cuda-*, triton, torch/lib/*cuda*), "
        "+ the exported learner .pkl",
    }
