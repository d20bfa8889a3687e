"""Deployment formats beyond safetensors: ONNX graphs for onnxruntime, fp32 or static int8 (:mod:`.onnx`)."""
