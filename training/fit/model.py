"""The network and the loss: fastai's ResNet34 (or a smaller student from timm) for one
grayscale channel, soft targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastai.vision.all import create_timm_model, create_vision_model, resnet34
from torch import nn

from emotion.card import CLASSES

SERVER = "resnet34"
# The server's network, and students for the device: timm bodies under fastai's head.
ARCHES = (SERVER, "resnet10t", "mobilenetv3_large_100")


def learner_arch(arch: str = SERVER):
    """What vision_learner takes: fastai's resnet34 function, or a timm model's name."""
    if arch not in ARCHES:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHES)}")
    return resnet34 if arch == SERVER else arch


def build_model(arch: str = SERVER) -> nn.Module:
    """What `vision_learner(arch, pretrained=False, n_in=1, n_out=8)` builds.

    Export rebuilds it with this same call, so the weights load into the same graph.
    """
    body = learner_arch(arch)
    if arch == SERVER:
        return create_vision_model(body, n_out=len(CLASSES), pretrained=False, n_in=1)
    return create_timm_model(body, n_out=len(CLASSES), pretrained=False, n_in=1)[0]


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy against a probability vector (the FER+ vote distribution).

    With `prior` and `tau` > 0 it is the logit-adjusted loss (Menon et al., 2021): the loss
    sees logits + tau * log(prior), so the network's own logits learn the class-balanced
    posterior and rare classes (Contempt, Disgust) are not drowned by Neutral and Happiness.
    """

    def __init__(self, prior: list[float] | None = None, tau: float = 0.0):
        super().__init__()
        offset = torch.zeros(len(CLASSES))
        if prior is not None and tau:
            offset = tau * torch.log(torch.as_tensor(prior, dtype=torch.float32))
        self.register_buffer("offset", offset)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        adjusted = logits + self.offset.to(logits.device)
        return -(target * F.log_softmax(adjusted, dim=1)).sum(dim=1).mean()

    # fastai's get_preds/predict use these to turn logits into probabilities and labels.
    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=1)

    def decodes(self, probs: torch.Tensor) -> torch.Tensor:
        return probs.argmax(dim=1)


def soft_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Top-1 agreement with the plurality vote (a quick per-epoch signal, not the protocol)."""
    return (logits.argmax(dim=1) == target.argmax(dim=1)).float().mean()


class FlipAverage(nn.Module):
    """Test-time augmentation baked into the exported graph: mean logits of x and its mirror."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = self.model(torch.cat([x, torch.flip(x, dims=[3])]))
        plain, mirrored = both.chunk(2)
        return (plain + mirrored) / 2


class LogitOffset(nn.Module):
    """Adds a fixed per-class offset to the logits (beta * log prior, chosen at export)."""

    def __init__(self, model: nn.Module, offset: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.offset
