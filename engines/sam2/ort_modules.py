"""The streaming engine's SAM 2 modules run by ONNX Runtime from an export folder (fp32, or int8 encoder and memory
attention). CUDA execution provider when the engine's device is CUDA and onnxruntime has it, CPU otherwise."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from surgseg.engines.sam2.backends import ExportedModules
from surgseg.engines.sam2.manifest import QUANTISED_PARTS, ExportManifest, int8_name

log = logging.getLogger(__name__)

DEFAULT_THREADS = 2


def ort_session(path: str | os.PathLike, threads: int = DEFAULT_THREADS, cuda: bool = False):
    """An ONNX Runtime session with full graph optimisation, `threads` intra-op threads, one inter-op thread, and no
    spin-waiting between ops: SAM 2's sessions share the CPU with torch (glue ops, the refiner), which spinning idle
    threads would starve."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: shape-merge warnings on the encoder's padding are harmless
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


class OrtModules(ExportedModules):
    """One ONNX Runtime session per exported part; numpy feeds, float32 torch tensors back on `device`."""

    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, manifest: ExportManifest, precision: str = "fp32",
                 device: str = "cpu", threads: int = DEFAULT_THREADS) -> None:
        if precision == "int8":
            from surgseg.engines.sam2.export import ensure_int8

            manifest = ensure_int8(manifest)
        super().__init__(model, manifest.feat_sizes, device)
        cuda = self.device.type == "cuda"
        chosen = {part: int8_name(part) if precision == "int8" and part in QUANTISED_PARTS else part
                  for part in manifest.files if not part.endswith(".int8")}
        self.sessions = {part: ort_session(manifest.file(name), threads, cuda) for part, name in chosen.items()}
        self.inputs = {part: [i.name for i in s.get_inputs()] for part, s in self.sessions.items()}
        self.parts = set(self.sessions)
        log.info("SAM 2 on ONNX Runtime %s (%s, %s)", precision, manifest.folder,
                 self.sessions["image_encoder"].get_providers()[0])

    def _run(self, part: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feeds = {name: x.detach().cpu().numpy() for name, x in zip(self.inputs[part], inputs)}
        outputs = self.sessions[part].run(None, feeds)
        return [torch.from_numpy(np.ascontiguousarray(y)).to(self.device) for y in outputs]
