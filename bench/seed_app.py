"""The seed's design, rebuilt for comparison: a fastai resnet34 learner at 196 px RGB,
`learner.predict` per request, a Starlette route `/face` reading the form field `imgBase64`.

Weights are random (latency does not depend on them). The learner is exported at bench time
into a temporary folder (`python -m bench.seed_app DIR`), then loaded once per process from
$SEED_LEARNER, as the seed loaded its exported learner.

    SEED_LEARNER=DIR/seed-learner.pkl uvicorn bench.seed_app:create_app --factory
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

from fastai.vision.all import Learner, PILImage, load_learner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emotion.card import CLASSES

LEARNER_ENV = "SEED_LEARNER"
SIZE = 196


def create_app(learner_path: Path | None = None) -> Starlette:
    learn = load_learner(learner_path or os.environ[LEARNER_ENV])

    async def face(request: Request) -> JSONResponse:
        form = await request.form()
        raw = base64.b64decode(str(form["imgBase64"]).split(",", 1)[-1])
        _, _, probs = learn.predict(PILImage.create(raw))
        scores = {str(c): float(p) for c, p in zip(learn.dls.vocab, probs, strict=True)}
        ranked = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
        return JSONResponse({"predictions": ranked})

    return Starlette(routes=[Route("/face", face, methods=["POST"])])


def export_learner(directory: Path) -> Learner:
    """A tiny generated data set -> `vision_learner(dls, resnet34, pretrained=False)` at
    196 px -> an exported .pkl, the file the seed deployed."""
    import numpy as np
    from fastai.vision.all import (
        CategoryBlock,
        ImageDataLoaders,
        Normalize,
        Resize,
        imagenet_stats,
        resnet34,
        vision_learner,
    )
    from PIL import Image

    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files, labels = [], []
    for i in range(2 * len(CLASSES)):
        path = images / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
        files.append(path)
        labels.append(CLASSES[i % len(CLASSES)])
    dls = ImageDataLoaders.from_lists(
        images,
        files,
        labels,
        valid_pct=0.25,
        seed=0,
        y_block=CategoryBlock(vocab=list(CLASSES)),
        item_tfms=Resize(SIZE),
        batch_tfms=Normalize.from_stats(*imagenet_stats),
        bs=4,
        num_workers=0,
    )
    learn = vision_learner(dls, resnet34, pretrained=False)
    learn.export(directory / "seed-learner.pkl")
    return learn


def model_figures(learn: Learner, runs: int) -> dict:
    """FLOPs (torch hooks: Conv2d and Linear MACs x2) and forward ms of the bare model at
    1x3x196x196, to tell the model's share of the seed's latency from fastai's overhead."""
    import torch

    model = learn.model.eval()
    macs = 0

    def count(module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, torch.nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        model(x)
        for hook in hooks:
            hook.remove()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "flops": 2 * macs,
        "flops_method": "torch forward hooks on the fastai model: Conv2d and Linear MACs x2, "
        f"input 1x3x{SIZE}x{SIZE}",
        "forward_ms_p50": times[len(times) // 2],
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str]) -> None:
    """`python -m bench.seed_app DIR [RUNS]`: export the learner into DIR, print JSON."""
    directory = Path(argv[0])
    runs = int(argv[1]) if len(argv) > 1 else 20
    learn = export_learner(directory)
    path = directory / "seed-learner.pkl"
    figures = {"learner": str(path), "learner_bytes": path.stat().st_size}
    figures.update(model_figures(learn, runs))
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
