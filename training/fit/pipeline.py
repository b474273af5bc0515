"""fastai's data pipeline, configured from the model card (size, colour mode, normalisation)."""

from __future__ import annotations

import torch
from fastai.vision.all import (
    DataLoaders,
    Datasets,
    IntToFloatTensor,
    Normalize,
    PILImageBW,
    RandomErasing,
    Resize,
    ResizeMethod,
    ToTensor,
    aug_transforms,
)

from emotion.card import ModelCard
from training.data.augment import LiveCropAugment
from training.data.readers import Face


class FaceImage:
    """Face -> fastai image (a class, not a lambda, so the pipeline pickles)."""

    def __init__(self, faces: list[Face]):
        self.faces = faces

    def __call__(self, i: int) -> PILImageBW:
        return PILImageBW.create(self.faces[i].path)


class FaceTarget:
    def __init__(self, faces: list[Face]):
        self.faces = faces

    def __call__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.faces[i].target)


def _check_card(card: ModelCard) -> None:
    if card.color_mode != "L" or card.resize != "bilinear":
        raise ValueError("the fastai pipeline here is grayscale with bilinear resizing")


def item_transforms(card: ModelCard, live_aug: float = 0.0, seed: int | None = None) -> list:
    _check_card(card)
    # Resize's default resample is bilinear, matching card.resize. LiveCropAugment runs on
    # the training split only; `live_aug` is its strength (0: left out).
    resize = Resize(card.input_size, method=ResizeMethod.Crop)
    return [LiveCropAugment(live_aug, seed=seed), resize] if live_aug else [resize]


def batch_transforms(card: ModelCard) -> list:
    # The random ones run on the training split only; validation gets scaling + Normalize.
    norm = Normalize.from_stats(torch.tensor([card.mean]), torch.tensor([card.std]))
    # Box framing (scale, shift, rotation) is LiveCropAugment's; this adds flips, a little
    # zoom and warp, and brightness/contrast.
    geometry_and_light = aug_transforms(
        do_flip=True,
        max_rotate=8.0,
        max_zoom=1.1,
        max_warp=0.1,
        max_lighting=0.35,
        p_affine=0.8,
        p_lighting=0.8,
    )
    return [IntToFloatTensor(), *geometry_and_light, norm, RandomErasing(p=0.3, max_count=1)]


def dataloaders(
    train: list[Face],
    valid: list[Face],
    card: ModelCard,
    bs: int,
    seed: int,
    workers: int = 0,
    live_aug: float = 0.0,
    shuffle: bool = True,
    target: type[FaceTarget] = FaceTarget,
) -> DataLoaders:
    faces = train + valid
    splits = [list(range(len(train))), list(range(len(train), len(faces)))]
    dsets = Datasets(range(len(faces)), [[FaceImage(faces)], [target(faces)]], splits=splits)
    return dsets.dataloaders(
        bs=bs,
        after_item=[*item_transforms(card, live_aug, seed), ToTensor()],
        after_batch=batch_transforms(card),
        num_workers=workers,  # 0 on two cores (workers only add copying); more on a GPU box
        seed=seed,
        shuffle=shuffle,  # False: the training faces go in the order given (batches made upstream)
    )


def inference_batch(faces: list[Face], card: ModelCard) -> torch.Tensor:
    """fastai's own validation pipeline on image files (the reference for parity)."""
    dls = dataloaders(faces[:1], faces, card, bs=len(faces), seed=0)
    dl = dls.valid.new(shuffle=False, drop_last=False)
    x, _ = dl.one_batch()
    return x.as_subclass(torch.Tensor)
