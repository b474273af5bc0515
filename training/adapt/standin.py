"""Does `make finetune` forget? Measured on a stand-in for a user's own folder, built from FER+.

    python -m training.adapt.standin [--faces 600] [finetune options, e.g. --replay none]

A user's small collection differs from FER2013 in camera, light and framing, lacks a class or
two, and is labelled by one person. The stand-in, built at run time in a temporary folder
(never in the repository) from FER+ training faces:

- seven class folders, no Neutral; --faces training faces (Happiness, Surprise, Sadness and
  Anger 100-120 each, fewer of the rare Fear, Disgust and Contempt), plus --test faces of
  each class from other FER+ faces as the "other people of the same set";
- one fixed domain shift on every face: the crop moved off-centre and tightened, a gamma of
  2.2 (a dim camera), a Gaussian blur and reduced contrast;
- a bias toward confusing faces: faces on which annotators disagreed (votes for a second
  class) are drawn more often, as a single labeller's folder would hold them;
- file names carry made-up person ids (person-<n>), so the held-out split is by person;
- the other people's folder also holds --absent faces of the class the folder lacks
  (Neutral) in the same look: does the new model still say Neutral for a neutral face from
  the user's camera? It is reported apart, so that the seven classes' figures stay as before.

It fine-tunes the shipped model on it with training.adapt.finetune (the options after ours go to
finetune) and prints per class: FER+ Valid before and after, and the stand-in's test faces
before and after. training/README.md's figures come from this command.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from emotion.card import CLASSES
from training.adapt import finetune
from training.data import readers

# Training faces per class: a user's collection, the common expressions first.
SHARES = {"Happiness": 0.2, "Surprise": 0.18, "Sadness": 0.18, "Anger": 0.18, "Fear": 0.1,
          "Disgust": 0.08, "Contempt": 0.08}  # fmt: skip
PEOPLE = 59
# Other people's faces of the class the folder lacks (Neutral), in the folder's look: does
# the fine-tuned model still say Neutral for a neutral face from the user's camera?
ABSENT_TEST = 100


def shifted(path: Path) -> Image.Image:
    """The fixed domain shift: off-centre tight crop, gamma 2.2, blur, lower contrast."""
    with Image.open(path) as im:
        face = im.convert("L")
    side = face.width
    crop = round(side * 0.84)
    dx, dy = round(side * 0.14), round(side * 0.10)  # toward the lower right
    face = face.crop((dx, dy, dx + crop, dy + crop)).resize((side, side), Image.Resampling.BILINEAR)
    face = face.point(lambda v: round(255 * (v / 255) ** 2.2))
    face = face.filter(ImageFilter.GaussianBlur(1.0))
    return ImageEnhance.Contrast(face).enhance(0.7)


def draw(
    faces: list[readers.Face], labels: list[int | None], counts: dict[str, int], seed: int
) -> dict[str, list[readers.Face]]:
    """Per class, `counts[c]` faces without replacement, ambiguous faces favoured."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for name, n in counts.items():
        index = CLASSES.index(name)
        members = [f for f, lab in zip(faces, labels, strict=True) if lab == index]
        second = np.array([sorted(f.votes)[-2] for f in members])
        weight = 1.0 + 2.0 * (second >= 2)  # several annotators saw another class
        pick = rng.choice(len(members), n, replace=False, p=weight / weight.sum())
        chosen[name] = [members[i] for i in pick]
    return chosen


def build(
    root: Path,
    faces_total: int,
    test_per_class: int,
    seed: int,
    ferplus: Path = finetune.FERPLUS,
    absent_test: int = ABSENT_TEST,
) -> tuple[Path, Path]:
    """The stand-in's training folder and its other-people folder, under `root`; the
    other people's folder also holds `absent_test` faces of each class the training folder
    lacks (Neutral), in the same look."""
    faces, labels = readers.read_ferplus(ferplus / "FER2013Train")
    counts = {c: round(faces_total * s) for c, s in SHARES.items()}
    counts["Happiness"] += faces_total - sum(counts.values())
    # The folder's classes first, in SHARES' order (the draws, and so every stand-in figure
    # measured before the absent class's faces were added, stay the same), then the rest.
    wanted = {c: n + test_per_class for c, n in counts.items()}
    wanted |= {c: absent_test for c in CLASSES if c not in counts and absent_test}
    drawn = draw(faces, labels, wanted, seed)
    counts = {c: counts.get(c, 0) for c in drawn}
    rng = np.random.default_rng(seed + 1)
    train_root, test_root = root / "faces", root / "other-people"
    for name, members in drawn.items():
        for i, face in enumerate(members):
            test = i >= counts[name]
            folder = (test_root if test else train_root) / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            person = rng.integers(PEOPLE)
            shifted(face.path).save(folder / f"person-{person:02d}_{face.path.stem}.png")
    return train_root, test_root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--faces", type=int, default=600, help="training faces in the folder")
    p.add_argument("--test", type=int, default=40, help="other-people faces per class")
    p.add_argument("--absent", type=int, default=ABSENT_TEST, help="other people's Neutral faces")
    p.add_argument("--seed", type=int, default=0)
    args, rest = p.parse_known_args(argv)
    if args.absent < 1:
        p.error("--absent: at least 1 face")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        train_root, test_root = build(
            root, args.faces, args.test, args.seed, absent_test=args.absent
        )
        out = root / "standin.onnx"
        started, cpu_started = time.time(), time.process_time()
        finetune.main(["--data", str(train_root), "--out", str(out), *rest])
        wall, cpu = time.time() - started, time.process_time() - cpu_started
        card = json.loads(out.with_suffix(".json").read_text())["fine_tuned"]
        test_faces, test_labels = readers.read_folders(test_root)
        test_labels = np.array(test_labels)
        weights = Path(card["from"].split("(")[-1].rstrip(")"))
        taught = np.isin(test_labels, [CLASSES.index(c) for c in SHARES])
        before = weights.with_suffix(".onnx")

        def read(keep: np.ndarray) -> dict:
            faces = [f for f, k in zip(test_faces, keep, strict=True) if k]
            return {
                "before": finetune.scores(before, faces, test_labels[keep]),
                "after": finetune.scores(out, faces, test_labels[keep]),
            }

        test, absent = read(taught), read(~taught)
    print(finetune.table(f"stand-in, other people ({args.test} per class)", **test))
    print(finetune.table("the class the folder lacks, other people in its look", **absent))
    print(markdown(card["check"], test, card["held_out"], absent))
    print(
        f"training: {card['wall_seconds']} s wall, {card['cpu_seconds']} s CPU "
        f"({card['threads']} threads); finetune.main with its checks: {wall:.0f} s wall, "
        f"{cpu:.0f} s CPU"
    )


def markdown(check: dict, test: dict, held: dict, absent: dict) -> str:
    rows = ["| | FER+ Valid before | after | stand-in other people before | after |",
            "|---|---|---|---|---|"]  # fmt: skip

    def cell(part: dict, key: str, name: str | None = None) -> str:
        value = part[key] if name is None else part[key].get(name)
        return "-" if value is None else f"{value:.1%}"

    for key in ("accuracy", "mean_recall"):
        rows.append(f"| {key} | {cell(check['before'], key)} | {cell(check['after'], key)} | "
                    f"{cell(test['before'], key)} | {cell(test['after'], key)} |")  # fmt: skip
    for name in CLASSES:
        other = test if name in SHARES else absent  # the lacking class: its faces in the look
        rows.append(
            f"| {name} | {cell(check['before'], 'recall', name)} | "
            f"{cell(check['after'], 'recall', name)} | {cell(other['before'], 'recall', name)} | "
            f"{cell(other['after'], 'recall', name)} |"
        )
    rows.append(f"held-out split of the folder: {held['before']['accuracy']:.1%} -> "
                f"{held['after']['accuracy']:.1%} ({held['after']['faces']} faces)")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    main()
