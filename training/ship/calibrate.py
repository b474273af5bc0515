"""Fit the temperature that makes the model's confidence honest; record it in the card.

    python -m training.ship.calibrate --model models/emotion.onnx --valid DIR

Trained on the annotators' vote distributions, the network learns their disagreement and is
under-confident against majority-vote labels. One scalar T, softmax(logits / T), fitted by
minimising the negative log-likelihood of the majority labels, fixes that and never changes
a prediction's class. Besides the in-sample figures, a cross-fitted ECE is reported: T
fitted on all folds but one, measured on that one, so the figure is not only in-sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from emotion.model import EmotionModel, softmax
from training.measure import metrics
from training.measure.evaluate import file_logits, labelled_faces

log = logging.getLogger("training")
BINS = 15


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    log_probs = log_softmax(logits / temperature, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    # Searched on log T: NLL is smooth and unimodal there, and T stays positive.
    found = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(found.x))


def cross_fitted_ece(logits: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> float:
    """ECE of probabilities whose temperature never saw their own faces (pooled over folds)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    probs = np.empty_like(logits)
    for held_out in np.array_split(order, folds):
        fit_on = np.setdiff1d(order, held_out)
        t = fit_temperature(logits[fit_on], labels[fit_on])
        probs[held_out] = softmax(logits[held_out] / t)
    return metrics.expected_calibration_error(probs, labels, BINS)


def calibrate(logits: np.ndarray, labels: np.ndarray, folds: int = 2, seed: int = 0) -> dict:
    temperature = fit_temperature(logits, labels)
    ece = metrics.expected_calibration_error
    return {
        "method": "temperature scaling: one T minimising majority-label NLL",
        "temperature": round(temperature, 4),
        "faces": len(labels),
        "nll_before": round(nll(logits, labels, 1.0), 4),
        "nll_after": round(nll(logits, labels, temperature), 4),
        "ece_15_bins_before": round(ece(softmax(logits), labels, BINS), 4),
        "ece_15_bins_after": round(ece(softmax(logits / temperature), labels, BINS), 4),
        f"ece_15_bins_cross_fitted_{folds}_fold": round(
            cross_fitted_ece(logits, labels, folds, seed), 4
        ),
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/emotion.onnx"))
    p.add_argument("--valid", type=Path, required=True, help="faces to fit on (either layout)")
    p.add_argument("--folds", type=int, default=2, help="for the cross-fitted ECE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-card", action="store_true", help="print only; leave the card as is")
    args = p.parse_args(argv)

    model = EmotionModel(args.model)
    faces, labels = labelled_faces(args.valid)
    logits = file_logits(model, [f.path for f in faces])
    result = {"split": str(args.valid), **calibrate(logits, labels, args.folds, args.seed)}
    print(json.dumps(result, indent=2))
    if not args.no_card:
        card_path = args.model.with_suffix(".json")
        card = model.card
        details = {**card.details, "calibration": result}
        calibrated = dataclasses.replace(card, temperature=result["temperature"], details=details)
        calibrated.write(card_path)
        log.info("temperature %.4f written to %s", result["temperature"], card_path)


if __name__ == "__main__":
    main()
