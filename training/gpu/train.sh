#!/usr/bin/env bash
# Train on a borrowed GPU machine (the `device` tool, no network there): FER+ and the fastai
# wheels travel in .gpu/ (made by `make gpu-pack`); the winner comes back through $OUT.
#   device run: bash training/gpu/train.sh   (carry .gpu, timeout 600 s)
# then here: python -m training.gpu.sweep unpack --packed <files_at> --run runs/NAME
set -euo pipefail
: "${OUT:?the device tool sets OUT}"
data=../shared/data/ferplus  # the same relative path as here, so the recorded command matches
mkdir -p "$data" && tar -xJf .gpu/ferplus.tar.xz -C "$data"
python3 -m pip install -q --no-deps --no-index .gpu/wheels/*.whl
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
export PYTHONPATH="$PWD/function:$PWD"
python3 -m training.gpu.sweep train --train "$data/FER2013Train" --valid "$data/FER2013Valid" \
    --runs runs/gpu --out "$OUT" --deadline "${DEADLINE:-480}" --workers 4 --threads 2 \
    --config b64:20 --config b128:36:128:4e-3 --config b256:60:256:6e-3
