"""Stage 2, fit: the network (fastai ResNet34) trained on the data, its classifier re-balanced,
and exported: float16 weights plus a float ONNX file with its model card."""
