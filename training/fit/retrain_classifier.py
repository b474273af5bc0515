"""Re-balance a trained model's classifier: retrain only its last linear layer with the
logit-adjusted loss, on the frozen network's features (Kang et al., 2020, "decoupling").

    python -m training.fit.retrain_classifier [--weights PATH.pth] --train DIR --out PATH [--tau 1]

Without --weights: the shipped model's, rebuilt from models/emotion.onnx (training.fit.shipped).

The representation the plain loss learned is kept; only the 512 -> 8 layer moves, so the rare
classes get their share of the decision without the accuracy a from-scratch balanced run
lost here. Features are computed once (minutes on a CPU), the layer trains in seconds.
Writes a float16 state dict like export's; `training.fit.export --weights` makes the ONNX file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from emotion.card import ModelCard
from emotion.preprocess import to_input
from training.data import readers
from training.fit import shipped
from training.fit.export import float_card, load_shipped, save_weights
from training.fit.model import SoftTargetCrossEntropy

log = logging.getLogger("training")


def penultimate(
    model: torch.nn.Module, faces: list[readers.Face], card: ModelCard, flip_mean: bool = False,
    bs: int = 256,
) -> torch.Tensor:  # fmt: skip
    """The last linear layer's inputs (eval mode), for the faces as the service sees them.

    With `flip_mean`, the mean of a face's and its mirror's: what the layer sees in the
    served graph, whose baked mirror TTA averages the two logits (the layer is linear)."""
    head = model[1]
    trunk = torch.nn.Sequential(model[0], *list(head)[:-1])
    out = []
    with torch.no_grad():
        for i in range(0, len(faces), bs):
            x = torch.from_numpy(to_input([Image.open(f.path) for f in faces[i : i + bs]], card))
            features = trunk(x)
            out.append((features + trunk(torch.flip(x, dims=[3]))) / 2 if flip_mean else features)
    return torch.cat(out)


def fit_last_layer(
    features: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, prior, tau: float,
    epochs: int = 30, lr: float = 1e-3, seed: int = 0,
) -> torch.Tensor:  # fmt: skip
    torch.manual_seed(seed)
    w = weight.clone().requires_grad_(True)
    loss_func = SoftTargetCrossEntropy(prior, tau)
    optimiser = torch.optim.Adam([w], lr=lr)
    n = len(features)
    for _ in range(epochs):
        for batch in torch.randperm(n).split(256):
            optimiser.zero_grad()
            loss = loss_func(F.linear(features[batch], w), targets[batch])
            loss.backward()
            optimiser.step()
    return w.detach()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--weights", type=Path, help="default: the shipped model's (training.fit.shipped)"
    )
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the new float16 state dict")
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cache", type=Path, help="keep the features here between runs")
    p.add_argument(
        "--flip-mean",
        action="store_true",
        help="fit on the mean features of each face and its mirror (as the served TTA sees it)",
    )
    args = p.parse_args(argv)

    args.weights = args.weights or shipped.weights(faces=args.train)
    card = float_card(ModelCard.read(args.weights.with_suffix(".json")))
    model = load_shipped(args.weights)
    faces, _ = readers.read_dataset(args.train)
    # Features belong to one set of weights: a cache made from other weights is recomputed.
    source = hashlib.sha256(args.weights.read_bytes()).hexdigest() + ("+flip" * args.flip_mean)
    cached = torch.load(args.cache) if args.cache and args.cache.is_file() else {}
    if isinstance(cached, dict) and cached.get("weights_sha256") == source:
        features = cached["features"]
    else:
        features = penultimate(model, faces, card, args.flip_mean)
        if args.cache:
            torch.save({"weights_sha256": source, "features": features}, args.cache)
    targets = torch.from_numpy(np.stack([f.target for f in faces])).float()
    prior = readers.class_prior(faces)
    last = model[1][-1]
    last.weight.data = fit_last_layer(
        features, targets, last.weight.data, prior, args.tau, args.epochs, args.lr
    )
    weights = save_weights(model, args.out)
    step = {"method": "last linear layer retrained with the logit-adjusted loss on the frozen "
            "network's features (soft targets, Adam)", "from": args.weights.name,
            "faces": len(faces), "tau": args.tau, "epochs": args.epochs, "lr": args.lr,
            "features": "mean of face and mirror" if args.flip_mean else "face"}  # fmt: skip
    card.details["recipe"] = {**card.details.get("recipe", {}), "rebalance": step}
    card.details["logit_adjustment"] = {
        "train_tau": args.tau,
        # export --prior-weight chooses it (training.measure.choose_prior_weight)
        "prior_weight": 0.0,
        "prior": prior,
        "rule": "last layer trained on logits + tau*log(prior); exported logits = network "
        "logits + prior_weight*log(prior)",
    }
    card.details["weights"] = weights
    card.write(args.out.with_suffix(".json"))
    log.info("wrote %s and its card", args.out)
    print(json.dumps(step))


if __name__ == "__main__":
    main()
