"""Train several schedules side by side on one borrowed GPU machine and keep the best one
that finishes before a deadline; bring its weights back small enough to travel.

    python -m training.gpu.sweep train --train DIR --valid DIR --runs DIR --out DIR \
        --deadline 480 --config b64:20 --config b128:36:128:4e-3 --config b256:60:256:6e-3
    python -m training.gpu.sweep unpack --packed DIR --run runs/NAME

`train` starts one `training.fit.train` process per --config (name:epochs[:batch[:lr]]); they
run side by side (on an H200 box, fastai's per-batch overhead, not the GPU, sets the pace:
~23 s per FER+ epoch at batch 64, alone or three at a time). It projects each run's
finish from its per-epoch times and stops a run that cannot end its one-cycle schedule
before the deadline (a cut one-cycle run is worse than a shorter finished one). The finished
run with the best last-epoch validation agreement wins. Its weights travel as float16 in
chunks (the machine returns files of at most 16 MiB); `unpack` rebuilds a float32 final.pth
and the run folder that export and evaluate read. The float16 rounding's accuracy cost is
measured on the GPU and written to rounding.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger("training")
CHUNK_BYTES = 15 * 1024 * 1024
RUN_FILES = ("config.json", "history.csv", "timing.json")


def epoch_seconds(history: Path) -> list[float]:
    if not history.is_file():
        return []
    with history.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("time")]
    return [sum(int(p) * 60**i for i, p in enumerate(reversed(r["time"].split(":")))) for r in rows]


def last_agreement(history: Path) -> float:
    with history.open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["soft_accuracy"])


def parse_config(text: str) -> tuple[str, list[str]]:
    """name:epochs[:batch[:lr]] -> (name, training.fit.train options)."""
    name, *values = text.split(":")
    flags = ["--epochs", "--bs", "--lr"]
    if not 1 <= len(values) <= len(flags):
        raise argparse.ArgumentTypeError(f"--config {text!r}: expected name:epochs[:batch[:lr]]")
    return name, [item for pair in zip(flags, values, strict=False) for item in pair]


def launch(args: argparse.Namespace, name: str, options: list[str]) -> subprocess.Popen:
    run = args.runs / name
    run.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "training.fit.train", "--train", str(args.train),
               "--valid", str(args.valid), "--run", str(run), *options,
               "--workers", str(args.workers), "--threads", str(args.threads)]  # fmt: skip
    return subprocess.Popen(command, stdout=(run / "train.log").open("w"), stderr=subprocess.STDOUT)


def supervise(args: argparse.Namespace, configs: dict[str, list[str]]) -> list[str]:
    """Run all configs; stop any that is projected to miss the deadline. Returns finished."""
    started = time.time()
    procs = {name: launch(args, name, options) for name, options in configs.items()}
    epochs = {name: int(options[1]) for name, options in configs.items()}
    while any(p.poll() is None for p in procs.values()):
        time.sleep(5)
        now = time.time() - started
        for name, proc in procs.items():
            if proc.poll() is not None:
                continue
            done = epoch_seconds(args.runs / name / "history.csv")
            projected = now + (epochs[name] - len(done)) * (max(done[-2:]) if done else 0)
            alive = sum(q.poll() is None for q in procs.values())
            doomed = bool(done) and projected > args.deadline and alive > 1  # keep the last one
            if now > args.deadline or doomed:
                log.info(
                    "stopping %s at epoch %d (projected end %.0f s)", name, len(done), projected
                )
                proc.terminate()
                proc.wait()
    finished = [n for n, p in procs.items() if p.returncode == 0]
    log.info("finished in %.0f s: %s", time.time() - started, finished)
    return finished


def rounding_cost(args: argparse.Namespace, run: Path) -> dict[str, float]:
    """FER+ majority-vote accuracy of the float32 weights and of their float16 rounding."""
    from emotion.card import ModelCard
    from training.fit.export import load_weights
    from training.fit.model import FlipAverage
    from training.fit.pipeline import inference_batch
    from training.measure.evaluate import labelled_faces

    config = json.loads((run / "config.json").read_text())
    card = ModelCard(**{**config["card"], "classes": tuple(config["card"]["classes"])})
    faces, labels = labelled_faces(args.valid)
    x = inference_batch(faces, card)  # on fastai's default device (the GPU)
    truth = torch.from_numpy(labels).to(x.device)
    result = {}
    for name, dtype in (("float32", torch.float32), ("float16_rounded", torch.float16)):
        net = load_weights(run, None).to(x.device)
        with torch.no_grad():
            for p in net.state_dict().values():
                if p.is_floating_point():
                    p.copy_(p.to(dtype).float())
            logits = FlipAverage(net.eval()).forward(x)
        result[name] = float((logits.argmax(1) == truth).float().mean())
    return result


def pack(run: Path, out: Path) -> None:
    state = torch.load(run / "final.pth", map_location="cpu")
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    blob = out / "weights.fp16.pth"
    torch.save(half, blob)
    data = blob.read_bytes()
    blob.unlink()
    for i in range(0, len(data), CHUNK_BYTES):
        (out / f"weights.part{i // CHUNK_BYTES}").write_bytes(data[i : i + CHUNK_BYTES])
    for name in RUN_FILES:
        shutil.copy(run / name, out / name)


def unpack(packed: Path, run: Path) -> None:
    parts = sorted(
        packed.glob("weights.part*"), key=lambda p: int(p.name.removeprefix("weights.part"))
    )
    run.mkdir(parents=True, exist_ok=True)
    blob = run / "weights.fp16.pth"
    blob.write_bytes(b"".join(p.read_bytes() for p in parts))
    half = torch.load(blob, map_location="cpu")
    blob.unlink()
    torch.save(
        {k: v.float() if v.is_floating_point() else v for k, v in half.items()}, run / "final.pth"
    )
    for name in (*RUN_FILES, "rounding.json", "sweep.json"):
        if (packed / name).is_file():
            shutil.copy(packed / name, run / name)
    log.info("unpacked %d chunks into %s", len(parts), run / "final.pth")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--train", type=Path, required=True)
    t.add_argument("--valid", type=Path, required=True)
    t.add_argument("--runs", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True, help="where the winner is packed")
    t.add_argument("--config", action="append", required=True, help="name:epochs[:batch[:lr]]")
    t.add_argument("--deadline", type=float, required=True, help="seconds from start")
    t.add_argument("--workers", type=int, default=4)
    t.add_argument("--threads", type=int, default=2)
    u = sub.add_parser("unpack")
    u.add_argument("--packed", type=Path, required=True)
    u.add_argument("--run", type=Path, required=True)
    args = p.parse_args(argv)

    if args.command == "unpack":
        unpack(args.packed, args.run)
        return
    configs = dict(parse_config(c) for c in args.config)
    finished = supervise(args, configs)
    scores = {n: last_agreement(args.runs / n / "history.csv") for n in finished}
    summary = {
        "configs": configs,
        "finished": scores,
        "epoch_seconds": {n: epoch_seconds(args.runs / n / "history.csv") for n in configs},
        "hardware": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if scores:
        best = max(scores, key=lambda n: scores[n])
        summary["chosen"] = best
        pack(args.runs / best, args.out)
        rounding = rounding_cost(args, args.runs / best)
        (args.out / "rounding.json").write_text(json.dumps(rounding, indent=2) + "\n")
        log.info("chose %s; rounding: %s", best, rounding)
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
