"""The streaming engine's SAM 2 modules as TensorRT FP16 engines built from the exported fp32 ONNX files.

Engines are cached beside the ONNX files, one per part, GPU and TensorRT version, named after the ONNX file's
checksum (`<part>.<sha12>.<gpu>.<trt>.fp16.engine`, the refiner's `engine_path`), so a re-export never reuses a stale
engine; one timing cache per folder, GPU and TensorRT version speeds up rebuilds. Dynamic axes (memory tokens,
pointer tokens, prompt points) get one optimisation profile sized from the memory bounds.

Written against the documented TensorRT 10 Python API like `engines/refiner/trt_engine.py`. TensorRT's libraries
cannot be installed on the machines this was developed on (nor on the GPU check machines): this code is only
reached when `tensorrt` imports and is unverified until it runs on such a machine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from surgseg.engines.errors import InputError
from surgseg.engines.refiner.runtime import tensorrt_usable
from surgseg.engines.refiner.trt_engine import (BuildConfig, Profiles, build_engine, engine_path, execute,
                                                timing_cache_path)
from surgseg.engines.sam2.backends import ExportedModules
from surgseg.engines.sam2.config import MemoryConfig
from surgseg.engines.sam2.manifest import ExportManifest

log = logging.getLogger(__name__)

MAX_PROMPT_POINTS = 64
WORKSPACE_GIB = 4.0



def require_tensorrt(device: str = "cuda") -> None:
    """InputError naming what this machine (or the engine's device) lacks for the tensorrt backend."""
    if torch.device(device).type != "cuda":
        raise InputError(f"runtime.backend: 'tensorrt' runs on a CUDA device, not {device!r}")
    if not torch.cuda.is_available():
        raise InputError("runtime.backend: 'tensorrt' needs a CUDA GPU (torch sees none)")
    if not tensorrt_usable():
        raise InputError("runtime.backend: 'tensorrt' needs the tensorrt package with TensorRT's libraries "
                         "(`import tensorrt` fails here)")


def profiles(manifest: ExportManifest, memory: MemoryConfig, mem_dim: int, hidden_dim: int) -> dict[str, Profiles]:
    """Per part, (min, opt, max) shapes of its dynamic inputs for the memory bounds M, N and pointer window."""
    h, w = manifest.feat_sizes[-1]
    hw, split = h * w, hidden_dim // mem_dim
    entries = (1, 1 + memory.max_memories, memory.max_cond_frames + memory.max_memories)
    pointers = (split, split * memory.max_obj_ptrs, split * (memory.max_cond_frames + memory.max_obj_ptrs))
    tokens = {"memory": tuple(e * hw for e in entries), "ptr": pointers}
    attention = {f"{name}{suffix}": tuple((count, 1, mem_dim) for count in counts)
                 for name, counts in tokens.items() for suffix in ("", "_pos")}
    points = {"point_coords": tuple((1, n, 2) for n in (1, 3, MAX_PROMPT_POINTS)),
              "point_labels": tuple((1, n) for n in (1, 3, MAX_PROMPT_POINTS))}
    return {"memory_attention": attention, "heads": points, "heads_multimask": points}


def cached_engine(manifest: ExportManifest, part: str, shapes: Profiles) -> Path:
    """The FP16 engine of `part` for this GPU and TensorRT version, built (minutes) when missing."""
    import tensorrt as trt

    onnx_path = manifest.file(part)
    gpu = torch.cuda.get_device_name()
    keyed = onnx_path.with_name(f"{part}.{manifest.files[part]['sha256'][:12]}.onnx")
    path = engine_path(keyed, gpu, trt.__version__, "fp16")
    if not path.is_file():
        cache = timing_cache_path(manifest.folder / "sam2.onnx", gpu, trt.__version__)
        build = BuildConfig(precision="fp16", workspace_gib=WORKSPACE_GIB, timing_cache=cache)
        build_engine(onnx_path, path, build, profiles=shapes)
    return path


class _EnginePart:
    """One deserialized engine run on a torch CUDA stream over torch device buffers (TensorRT 10 tensor API)."""

    def __init__(self, path: Path, device: torch.device) -> None:
        import tensorrt as trt

        self.device = device
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise InputError(f"{path}: TensorRT could not deserialize this engine (other GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.stream = torch.cuda.Stream()

    def run(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        inputs = [t.to(self.device).contiguous() for t in tensors]
        for name, tensor in zip(self.inputs, inputs):
            self.context.set_input_shape(name, tuple(tensor.shape))
        outputs = [torch.empty(tuple(self.context.get_tensor_shape(n)), device=self.device, dtype=torch.float32)
                   for n in self.outputs]
        execute(self.context, self.stream, dict(zip((*self.inputs, *self.outputs), (*inputs, *outputs))))
        return outputs


class TrtModules(ExportedModules):
    """Every exported part as an FP16 TensorRT engine (built on first use, then cached beside the ONNX)."""

    name = "tensorrt"

    def __init__(self, model: torch.nn.Module, manifest: ExportManifest, memory: MemoryConfig,
                 device: str = "cuda") -> None:
        require_tensorrt(device)
        super().__init__(model, manifest.feat_sizes, device)
        shapes = profiles(manifest, memory, model.mem_dim, model.hidden_dim)
        names = [part for part in manifest.files if not part.endswith(".int8")]
        self.engines = {part: _EnginePart(cached_engine(manifest, part, shapes.get(part, {})), self.device)
                        for part in names}
        self.parts = set(self.engines)
        log.info("SAM 2 on TensorRT fp16 (%s)", manifest.folder)

    def _run(self, part: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return self.engines[part].run(*inputs)
