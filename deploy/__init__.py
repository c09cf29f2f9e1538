"""What ships: the ONNX export and its checks, int8 quantization, and the runtimes `predict.py` runs."""
