"""Build FER+'s folder layout from its two downloads, and check a layout.

    python -m training.data.build_ferplus --fer2013 fer2013.csv --ferplus fer2013new.csv --out DIR
    python -m training.data.build_ferplus --check DIR

`fer2013.csv` (FER2013's images, from Kaggle's "Challenges in Representation Learning: Facial
Expression Recognition Challenge"; columns emotion, pixels, Usage) and `fer2013new.csv` (the
FER+ votes, github.com/microsoft/FERPlus; columns Usage, Image name, then 10 vote counts) have
the same rows in the same order. Row i of one holds the pixels, row i of the other the name and
votes; rows FER+ dropped (not a face) have an empty name and are skipped, as FER+'s own
generate_training_data.py does. Written:

    DIR/FER2013Train/  fer0000000.png ...  label.csv     (Usage "Training")
    DIR/FER2013Valid/  ...                  label.csv     (Usage "PublicTest")
    DIR/FER2013Test/   ...                  label.csv     (Usage "PrivateTest")

48x48 grayscale PNGs; label.csv has no header: name, face box "(0, 0, 48, 48)", 10 votes
(neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF): the
layout of FER+'s data/ folder, which training.data.readers reads. Then every split is checked: every
row parses, every image exists and is 48x48, and the counts of the full downloads are met.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from training.data.readers import DataError, read_ferplus

log = logging.getLogger("training")

SPLITS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
SIDE = 48
BOX = f"(0, 0, {SIDE}, {SIDE})"
VOTE_COLUMNS = 10
# label.csv rows of the complete downloads (FER+ dropped the faces with no name).
FULL_COUNTS = {"FER2013Train": 28558, "FER2013Valid": 3579}


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty")
    return [h.strip() for h in rows[0]], rows[1:]


def _column(header: list[str], name: str, path: Path) -> int:
    lowered = [h.lower() for h in header]
    if name.lower() not in lowered:
        raise DataError(f"{path}:1: no {name!r} column (header: {', '.join(header)})")
    return lowered.index(name.lower())


def _pixels(text: str, where: str) -> np.ndarray:
    try:
        values = np.array([int(v) for v in text.split()], dtype=np.int64)
    except ValueError:
        raise DataError(f"{where}: pixels must be integers") from None
    if values.size != SIDE * SIDE or values.min() < 0 or values.max() > 255:
        raise DataError(f"{where}: expected {SIDE * SIDE} pixel values in 0-255")
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def build(fer2013: Path, ferplus: Path, out: Path) -> dict[str, int]:
    """Write the layout; returns images written per split folder."""
    fer_header, fer_rows = _rows(fer2013)
    plus_header, plus_rows = _rows(ferplus)
    pixels_at, usage_at = (
        _column(fer_header, "pixels", fer2013),
        _column(fer_header, "Usage", fer2013),
    )
    if len(plus_header) != 2 + VOTE_COLUMNS:
        raise DataError(f"{ferplus}:1: expected Usage, Image name and {VOTE_COLUMNS} vote columns")
    if len(fer_rows) != len(plus_rows):
        raise DataError(
            f"{fer2013} has {len(fer_rows)} rows but {ferplus} has {len(plus_rows)}: they must "
            "be the two files of the same data set, row for row"
        )
    labels: dict[str, list[list[str]]] = {folder: [] for folder in SPLITS.values()}
    for line, (fer_row, plus_row) in enumerate(zip(fer_rows, plus_rows, strict=True), start=2):
        usage, name, *votes = (v.strip() for v in plus_row)
        if usage not in SPLITS:
            raise DataError(f"{ferplus}:{line}: unknown Usage {usage!r}")
        if fer_row[usage_at].strip() != usage:
            raise DataError(
                f"{fer2013}:{line} is {fer_row[usage_at].strip()!r} but {ferplus}:{line} is "
                f"{usage!r}: the files are not row-aligned"
            )
        if not name:
            continue  # not a face: FER+ gave it no name
        if len(votes) != VOTE_COLUMNS or not all(v.isdigit() for v in votes):
            raise DataError(f"{ferplus}:{line}: expected {VOTE_COLUMNS} vote counts")
        image = _pixels(fer_row[pixels_at], f"{fer2013}:{line}")
        folder = out / SPLITS[usage]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / name)
        labels[SPLITS[usage]].append([name, BOX, *votes])
    for folder, rows in labels.items():
        if rows:
            with (out / folder / "label.csv").open("w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows(rows)
    return {folder: len(rows) for folder, rows in labels.items() if rows}


def check(root: Path, full: bool = True) -> dict[str, dict]:
    """Every split folder under root: rows parse, images exist and are 48x48 grayscale;
    with full=True, Train and Valid have the complete downloads' counts. Raises DataError."""
    found = {}
    for folder in SPLITS.values():
        split = root / folder
        if not (split / "label.csv").is_file():
            continue
        faces, labels = read_ferplus(split)
        rows = sum(1 for line in (split / "label.csv").read_text().splitlines() if line)
        for face in faces:
            with Image.open(face.path) as im:
                if im.size != (SIDE, SIDE):
                    raise DataError(f"{face.path}: {im.size[0]}x{im.size[1]}, not {SIDE}x{SIDE}")
        majority = Counter(lab is not None for lab in labels)[True]
        found[folder] = {"rows": rows, "faces_with_votes": len(faces), "majority_voted": majority}
    missing = [f for f in ("FER2013Train", "FER2013Valid") if f not in found]
    if missing:
        raise DataError(f"{root}: no {' or '.join(missing)}/label.csv")
    if full:
        for folder, expected in FULL_COUNTS.items():
            if found[folder]["rows"] != expected:
                raise DataError(
                    f"{root / folder}: {found[folder]['rows']} rows, the complete download has "
                    f"{expected} (use --partial for a subset)"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--fer2013", type=Path, help="FER2013's fer2013.csv (images)")
    p.add_argument("--ferplus", type=Path, help="FER+'s fer2013new.csv (votes)")
    p.add_argument("--out", type=Path, help="where to write the layout")
    p.add_argument("--check", type=Path, help="only check an existing layout")
    p.add_argument("--partial", action="store_true", help="do not require the full counts")
    args = p.parse_args(argv)
    try:
        if args.check:
            root = args.check
        elif args.fer2013 and args.ferplus and args.out:
            written = build(args.fer2013, args.ferplus, args.out)
            log.info("written: %s", written)
            root = args.out
        else:
            p.error("give --fer2013, --ferplus and --out, or --check DIR")
        for folder, counts in check(root, full=not args.partial).items():
            print(f"{root / folder}: {counts}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"ok: {root} is FER+'s layout (make train FERPLUS={root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
