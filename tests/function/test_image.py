"""What function/Dockerfile builds, without Docker: replay its COPY lines into an empty task
root, install the requirements there, and invoke the handler with only that folder and the
standard library on the import path (as the Lambda runtime does)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from lambda_events import http_api_event

from face_images import astronaut_face, data_url, encode
from infra.image import read_lock

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "function" / "Dockerfile"


def copy_instructions() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, with ${LAMBDA_TASK_ROOT} left for the caller."""
    steps = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.upper().startswith("COPY "):
            *sources, destination = shlex.split(line)[1:]
            steps.append((sources, destination))
    return steps


def build_task_root(task_root: Path) -> None:
    for sources, destination in copy_instructions():
        target = Path(destination.replace("${LAMBDA_TASK_ROOT}", str(task_root)))
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                dest = target / src.name if destination.endswith("/") else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
    # The image installs the lock for its own Python (tests/function/test_image_install.py
    # resolves exactly that); here the same pinned versions go in for this machine's Python,
    # whose wheels have other hashes.
    lock = read_lock(task_root / "requirements.lock")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--target", str(task_root),
         *(f"{pin.name}=={pin.version}" for pin in lock.values())],
        check=True,
    )  # fmt: skip
    (task_root / "requirements.lock").unlink()  # the Dockerfile's RUN removes it too


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("task-root")
    build_task_root(root)
    return root


INVOKE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from emotion.handler import handler
event = json.load(sys.stdin)
class Context: aws_request_id = "test"
result = handler(event, Context())
heavy = [m for m in ("torch", "fastai", "starlette.testclient") if m in sys.modules]
print(json.dumps({"result": result, "heavy": heavy, "path": sys.path}))
"""


def invoke(task_root: Path, event: dict, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", INVOKE, str(task_root)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        cwd=task_root,  # Lambda's working directory is the task root too
        timeout=120,
        env=None if env is None else {**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_dockerfile_copies_code_and_model():
    copied = [s for sources, _ in copy_instructions() for s in sources]
    assert "function/emotion" in copied
    assert {"models/emotion.onnx", "models/emotion.json"} <= set(copied)
    assert 'CMD ["emotion.handler.handler"]' in DOCKERFILE.read_text()


def test_handler_answers_from_the_task_root_alone(task_root):
    raw = encode(astronaut_face())
    from urllib.parse import urlencode

    form = urlencode({"imgBase64": data_url(raw)})
    out = invoke(
        task_root, http_api_event("POST", "/face", form, "application/x-www-form-urlencoded")
    )
    assert out["result"]["statusCode"] == 200, out["result"]
    predictions = json.loads(out["result"]["body"])["predictions"]
    assert len(predictions) == 8
    assert out["heavy"] == []
    site_packages = [p for p in out["path"] if "site-packages" in p]
    assert site_packages == [], "only the task root and the standard library may be importable"


def test_every_model_the_stack_can_choose_is_in_the_image_and_answers(task_root):
    """`cdk deploy -c model=...` sets EMOTION_MODEL to a path relative to the task root: each
    must be copied (and not dropped by .dockerignore) and serve /face from there."""
    from infra.config import MODEL_FILES

    copied = {s for sources, _ in copy_instructions() for s in sources}
    allowed = set(re.findall(r"^!(\S+)$", (ROOT / ".dockerignore").read_text(), re.M))
    form = urlencode({"imgBase64": data_url(encode(astronaut_face()))})
    event = http_api_event("POST", "/face", form, "application/x-www-form-urlencoded")
    for choice, model in MODEL_FILES.items():
        card = model.removesuffix(".onnx") + ".json"
        assert {model, card} <= copied & allowed, choice
        out = invoke(task_root, event, {"EMOTION_MODEL": model})
        assert out["result"]["statusCode"] == 200, (choice, out["result"])
        name = json.loads((ROOT / card).read_text())["name"]
        assert json.loads(out["result"]["body"])["model"].startswith(name), choice


def test_task_root_has_no_training_stack(task_root):
    names = {p.name.lower() for p in task_root.iterdir()}
    assert not names & {"torch", "fastai", "torchvision"}
    size_mb = sum(f.stat().st_size for f in task_root.rglob("*") if f.is_file()) / 1e6
    assert size_mb < 300, f"the function installs {size_mb:.0f} MB"
