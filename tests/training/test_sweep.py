"""The GPU sweep's small parts: config parsing and reading fastai's per-epoch times."""

from __future__ import annotations

import argparse

import pytest

from training.gpu import sweep


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("short:20", ["--epochs", "20"]),
        ("big:60:256", ["--epochs", "60", "--bs", "256"]),
        ("big:60:256:6e-3", ["--epochs", "60", "--bs", "256", "--lr", "6e-3"]),
    ],
)
def test_config_becomes_training_options(text, options):
    assert sweep.parse_config(text) == (text.split(":")[0], options)


@pytest.mark.parametrize("text", ["nameonly", "a:1:2:3:4"])
def test_a_malformed_config_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="name:epochs"):
        sweep.parse_config(text)


def test_epoch_seconds_reads_fastai_times(tmp_path):
    history = tmp_path / "history.csv"
    assert sweep.epoch_seconds(history) == []
    history.write_text(
        "epoch,train_loss,valid_loss,soft_accuracy,time\n0,2.2,1.7,0.46,00:20\n1,1.8,1.6,0.45,01:05\n"
    )
    assert sweep.epoch_seconds(history) == [20, 65]
    assert sweep.last_agreement(history) == 0.45
