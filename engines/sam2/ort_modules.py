"""The streaming engine's SAM 2 modules run by ONNX Runtime from an export folder (fp32, or int8 encoder and memory
attention). CUDA execution provider when the engine's device is CUDA and onnxruntime has it, CPU otherwise."""

from __future__ import annotations

import logging

import numpy as np
import torch

from surgseg.engines.onnx_files import ort_session
from surgseg.engines.sam2.backends import ExportedModules
from surgseg.engines.sam2.manifest import QUANTISED_PARTS, ExportManifest, int8_name

log = logging.getLogger(__name__)

class OrtModules(ExportedModules):
    """One ONNX Runtime session per exported part; numpy feeds, float32 torch tensors back on `device`."""

    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, manifest: ExportManifest, precision: str = "fp32",
                 device: str = "cpu", threads: int = 0) -> None:
        if precision == "int8":
            from surgseg.engines.sam2.export import ensure_int8

            manifest = ensure_int8(manifest)
        super().__init__(model, manifest.feat_sizes, device)
        cuda = self.device.type == "cuda"
        chosen = {part: int8_name(part) if precision == "int8" and part in QUANTISED_PARTS else part
                  for part in manifest.files if not part.endswith(".int8")}
        self.sessions = {part: ort_session(manifest.file(name), threads, cuda, spinning=False)
                         for part, name in chosen.items()}
        self.inputs = {part: [i.name for i in s.get_inputs()] for part, s in self.sessions.items()}
        self.parts = set(self.sessions)
        log.info("SAM 2 on ONNX Runtime %s (%s, %s)", precision, manifest.folder,
                 self.sessions["image_encoder"].get_providers()[0])

    def _run(self, part: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        feeds = {name: x.detach().cpu().numpy() for name, x in zip(self.inputs[part], inputs)}
        outputs = self.sessions[part].run(None, feeds)
        return [torch.from_numpy(np.ascontiguousarray(y)).to(self.device) for y in outputs]
