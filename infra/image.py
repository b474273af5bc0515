"""The Lambda image's Python dependencies: the base image's platform, and the lock file.

`function/Dockerfile` installs `function/requirements.lock` (every transitive dependency pinned,
with the sha256 of each wheel) into the AWS Lambda Python base image. What pip may install
there depends on the base image: its Python version and its glibc (python:3.11 and older are
Amazon Linux 2, glibc 2.26; python:3.12 and later are Amazon Linux 2023, glibc 2.34). This
module reads the tag from the Dockerfile, so the lock and the checks follow it.

    python -m infra.image lock     # (make lock) resolve requirements.txt -> requirements.lock
    python -m infra.image check    # exit 1 unless the lock exactly satisfies requirements.txt

Both ask PyPI (pip's own resolver, `--dry-run --report`, wheels only) for arm64 and x86_64.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "function" / "Dockerfile"
REQUIREMENTS = ROOT / "function" / "requirements.txt"
LOCK = ROOT / "function" / "requirements.lock"
BASE_IMAGE = "public.ecr.aws/lambda/python"
ARCHES = ("aarch64", "x86_64")  # Lambda's arm64 and x86_64
INDEX_URL = "https://pypi.org/simple"
# Legacy manylinux names PyPI still uses, and the glibc minor each stands for (PEP 600).
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class LockError(RuntimeError):
    """The Dockerfile, requirements or lock cannot be used; the message says why."""


def base_image(dockerfile: Path = DOCKERFILE) -> str:
    """The tag of the Lambda Python base image in the Dockerfile's FROM line, e.g. '3.12'."""
    for line in dockerfile.read_text().splitlines():
        match = re.match(rf"\s*FROM\s+{re.escape(BASE_IMAGE)}:(\S+)", line, flags=re.I)
        if match:
            return match.group(1)
    raise LockError(f"{dockerfile}: no `FROM {BASE_IMAGE}:<tag>` line")


def python_version(tag: str) -> str:
    """'3.12' from tags like '3.12', '3.12.2026.11.20' or '3.12-arm64'."""
    match = re.match(r"(\d+)\.(\d+)", tag)
    if not match:
        raise LockError(f"base image tag {tag!r} does not start with a Python version")
    return f"{match.group(1)}.{match.group(2)}"


def glibc(python: str) -> tuple[int, int]:
    """The base image's glibc: Amazon Linux 2 (2.26) up to python:3.11, 2023 (2.34) after."""
    major, minor = map(int, python.split("."))
    return (2, 26) if (major, minor) <= (3, 11) else (2, 34)


def platforms(libc: tuple[int, int], arch: str) -> list[str]:
    """pip --platform values for a glibc, most specific first (as pip ranks native tags).

    pip does not widen manylinux_2_34 to older tags by itself, so every one is listed."""
    tags = []
    for minor in range(libc[1], 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[minor]}_{arch}")
    return tags


def pip_env() -> dict[str, str]:
    """Plain PyPI, as the Docker build sees it: no local wheel folders, constraints or mirrors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for keep in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT"):  # proxies and slow links still apply
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


def target_args(python: str, arch: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python, "--index-url", INDEX_URL]
    for tag in platforms(glibc(python), arch):
        args += ["--platform", tag]
    return args


@dataclass
class Pin:
    name: str
    version: str
    hashes: set[str] = field(default_factory=set)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(
    requirements: Path, python: str, arch: str, pins: dict[str, Pin] | None = None
) -> dict[str, Pin]:
    """What pip installs for these requirements on the base image (name -> pin), via PyPI;
    with `pins`, held to those versions (pip constraints)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
            "--report", str(report), "--target", str(Path(tmp) / "target"),
            *target_args(python, arch), "-r", str(requirements),
        ]  # fmt: skip
        if pins:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in pins.values()))
            command += ["-c", str(constraints)]
        done = subprocess.run(command, env=pip_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise LockError(
                f"pip cannot resolve {requirements.name} for Python {python} on "
                f"{arch} (glibc {'.'.join(map(str, glibc(python)))}):\n{done.stderr.strip()}"
            )
        installs = json.loads(report.read_text())["install"]
    pins = {}
    for item in installs:
        meta, info = item["metadata"], item["download_info"]
        digest = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            raise LockError(f"{meta['name']}: PyPI gave no sha256 for {info['url']}")
        pins[canonical(meta["name"])] = Pin(canonical(meta["name"]), meta["version"], {digest})
    return pins


def resolve_all(
    requirements: Path = REQUIREMENTS,
    dockerfile: Path = DOCKERFILE,
    pins: dict[str, Pin] | None = None,
) -> dict[str, Pin]:
    """One pin set for every architecture (versions must agree; hashes are merged). With
    `pins` (the lock), the resolution is held to them: what requirements.txt needs, within
    the lock, so that a newer release upstream does not make the lock stale."""
    python = python_version(base_image(dockerfile))
    merged: dict[str, Pin] = {}
    for arch in ARCHES:
        for name, pin in resolve(requirements, python, arch, pins).items():
            if name not in merged:
                merged[name] = pin
            elif merged[name].version != pin.version:
                raise LockError(
                    f"{name}: {merged[name].version} on one architecture, {pin.version} on "
                    f"{arch}; pin it in {requirements.name}"
                )
            else:
                merged[name].hashes |= pin.hashes
    return merged


def render(pins: dict[str, Pin], python: str) -> str:
    lines = [
        "# The Lambda image's complete runtime dependencies, with the sha256 of each wheel.",
        "# Made by `make lock` (python -m infra.image lock) from function/requirements.txt for",
        f"# {BASE_IMAGE}:{python}, arm64 and x86_64. Do not edit by hand.",
    ]
    for name in sorted(pins):
        pin = pins[name]
        hashes = [f"    --hash=sha256:{h}" for h in sorted(pin.hashes)]
        lines.append(" \\\n".join([f"{name}=={pin.version}", *hashes]))
    return "\n".join(lines) + "\n"


def read_lock(path: Path = LOCK) -> dict[str, Pin]:
    """name -> pin, from a lock written by `render`."""
    text = path.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        name, _, version = spec.partition("==")
        hashes = {o.split(":", 1)[1] for o in options if o.startswith("--hash=sha256:")}
        pins[canonical(name)] = Pin(canonical(name), version, hashes)
    return pins


def direct_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """name -> pinned version of requirements.txt's own lines (every one must use ==)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        if not match:
            raise LockError(f"{path.name}: {line!r} is not pinned with ==")
        pins[canonical(match.group(1))] = match.group(3)
    return pins


def differences(locked: dict[str, Pin], fresh: dict[str, Pin]) -> list[str]:
    problems = []
    for name in sorted(set(locked) | set(fresh)):
        old, new = locked.get(name), fresh.get(name)
        if old is None:
            problems.append(f"{name}=={new.version} is missing from the lock")
        elif new is None:
            problems.append(f"{name}=={old.version} is locked but no longer required")
        elif old.version != new.version:
            problems.append(f"{name}: locked {old.version}, requirements give {new.version}")
        elif not new.hashes <= old.hashes:
            problems.append(f"{name}=={new.version}: a wheel's sha256 is not in the lock")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.image", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("lock", "check"))
    args = parser.parse_args(argv)
    try:
        python = python_version(base_image())
        held = read_lock() if args.command == "check" and LOCK.is_file() else None
        fresh = resolve_all(pins=held)
    except LockError as exc:
        print(f"infra.image: {exc}", file=sys.stderr)
        return 1
    if args.command == "lock":
        LOCK.write_text(render(fresh, python))
        print(f"wrote {LOCK.relative_to(ROOT)}: {len(fresh)} packages for Python {python}")
        return 0
    if not LOCK.is_file():
        print(f"{LOCK.relative_to(ROOT)} is missing: run `make lock`", file=sys.stderr)
        return 1
    problems = differences(read_lock(), fresh)
    for problem in problems:
        print(f"{LOCK.relative_to(ROOT)}: {problem} (run `make lock`)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
