"""Stage 3, measure: an exported model run through the service's own decoder and ONNX Runtime
on FER+ Valid (accuracy, per-class recall, calibration error, jittered crops, framing), the
prior weight chosen, the shipped model checked against its card, the teacher's answers."""
