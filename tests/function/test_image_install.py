"""The Lambda image can install its dependencies: the lock resolves, wheels only, for the base
image's Python and glibc (read from function/Dockerfile's FROM line), on arm64 and x86_64.

This asks PyPI, as `docker build` would (no Docker needed). Downloads are kept in build/wheels/
so that later runs only check the index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.image import (
    ARCHES,
    DOCKERFILE,
    LOCK,
    REQUIREMENTS,
    base_image,
    differences,
    direct_requirements,
    glibc,
    pip_env,
    platforms,
    python_version,
    read_lock,
    resolve_all,
    target_args,
)

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / "build" / "wheels"


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], env=pip_env(), capture_output=True, text=True
    )


def test_base_image_is_amazon_linux_2023():
    python = python_version(base_image())
    assert tuple(map(int, python.split("."))) >= (3, 12), f"python:{python} is Amazon Linux 2"
    assert glibc(python) == (2, 34)
    text = DOCKERFILE.read_text()
    assert "COPY function/requirements.lock" in text
    assert "--require-hashes" in text and "--only-binary=:all:" in text


def test_platform_tags_reach_down_from_the_glibc():
    tags = platforms((2, 34), "aarch64")
    assert tags[0] == "manylinux_2_34_aarch64"
    assert tags.index("manylinux_2_28_aarch64") < tags.index("manylinux2014_aarch64")
    assert "manylinux_2_35_aarch64" not in tags and "manylinux1_aarch64" in tags


def test_lock_covers_every_requirement_at_its_pinned_version():
    locked = read_lock()
    for name, version in direct_requirements().items():
        assert name in locked, f"{name} is in requirements.txt but not in the lock: make lock"
        assert locked[name].version == version, f"{name}: run `make lock`"
    for pin in locked.values():
        assert pin.hashes, f"{pin.name} has no --hash in the lock"


def test_lock_is_exactly_what_requirements_resolve_to():
    """requirements.txt, resolved within the lock's versions for the base image, needs every
    locked package and nothing else, with the locked wheels' hashes: catches a requirements
    change (or a Dockerfile tag change) without `make lock`, not a new release upstream."""
    problems = differences(read_lock(), resolve_all(pins=read_lock()))
    assert not problems, "function/requirements.lock is stale (run `make lock`):\n" + "\n".join(
        problems
    )


def test_a_requirement_added_without_make_lock_is_caught(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS.read_text() + "six==1.17.0\n")
    problems = differences(read_lock(), resolve_all(requirements, pins=read_lock()))
    assert problems == ["six==1.17.0 is missing from the lock"]


@pytest.mark.parametrize("arch", ARCHES)
def test_lock_downloads_as_wheels_for_the_base_image(arch):
    python = python_version(base_image())
    dest = WHEELS / f"py{python}-{arch}"
    done = pip(
        "download", "-q", "--require-hashes", "--no-deps", "-d", str(dest),
        *target_args(python, arch), "-r", str(LOCK),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = {p.name.split("-")[0].lower().replace("_", "-") for p in dest.glob("*.whl")}
    missing = set(read_lock()) - names
    assert not missing, f"no wheel for {missing}"
    for wheel in dest.glob("*.whl"):  # nothing that needs a newer glibc than the image's
        platform = wheel.stem.split("-")[-1]
        if platform != "any":
            assert any(tag in platform.split(".") for tag in platforms(glibc(python), arch))


def test_an_amazon_linux_2_base_image_would_fail(tmp_path):
    """The check would have caught python:3.11: onnxruntime has no wheel for glibc 2.26."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM public.ecr.aws/lambda/python:3.11\n")
    python = python_version(base_image(dockerfile))
    assert glibc(python) == (2, 26)
    onnxruntime = read_lock()["onnxruntime"]
    done = pip(
        "download", "-q", "--no-deps", "-d", str(tmp_path / "w"),
        *target_args(python, "aarch64"), f"onnxruntime=={onnxruntime.version}",
    )  # fmt: skip
    assert done.returncode != 0
    assert "No matching distribution" in done.stderr
