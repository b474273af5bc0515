"""Tooling for a borrowed GPU machine: train.sh runs there (no network; make gpu-pack packs
FER+ and fastai's wheels), sweep trains schedules side by side and brings the winner back."""
