"""The ONNX family: voices in Piper's format (VITS exported to ONNX) on ONNX Runtime sessions."""
