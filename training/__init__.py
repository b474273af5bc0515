"""Training: the stages a model goes through, one sub-package each, imports one way only.

    data     faces and their votes: FER+ built from its downloads, readers, augmentation, splits
    fit      the network, trained, re-balanced and exported (float weights and ONNX file)
    measure  an exported model on FER+ Valid: accuracy, recall, framing, the prior weight
    ship     the files the server and the page run: temperature, int8 storage, the detector
    adapt    a shipped model fitted to a deployment's people (fine-tuning, recalibration)
    gpu      tooling for a borrowed GPU machine (apart: nothing imports it)

A stage imports only the stages before it (data <- fit <- measure <- ship <- adapt);
tests/training/test_layout.py checks.
"""
