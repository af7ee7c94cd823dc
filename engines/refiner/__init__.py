"""The refiner at run time: its artefact, runtimes (torch / ONNX Runtime / TensorRT) and engine building."""
