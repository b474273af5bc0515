"""`python -m training.onnx_weights` moved to training.fit.onnx_weights;
this alias goes in the next release."""

from training.fit.onnx_weights import main

if __name__ == "__main__":
    raise SystemExit(main())
