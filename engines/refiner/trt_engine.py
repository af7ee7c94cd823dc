"""TensorRT engines for the refiner: file naming, building from ONNX (FP16/INT8), INT8 calibration, accuracy gate.

Written against the documented TensorRT 10 Python API (`tensorrt.Builder`, `OnnxParser`, `IBuilderConfig`,
`IInt8EntropyCalibrator2`). TensorRT's libraries could not be installed on any machine this was developed on:
the building and calibration code is unverified until `benchmarks/gpu_check.py` has run it on a GPU. The naming
and gate maths are plain Python and unit-tested.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.atomic import atomic_path
from surgseg.engines.metrics import iou

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "int8")
DEFAULT_MIN_IOU = {"fp16": 0.99, "int8": 0.97}


class AccuracyGateError(RuntimeError):
    """An engine's masks differ too much from the fp32 ONNX model's: the engine is not kept."""


@dataclass(frozen=True)
class BuildConfig:
    precision: str = "fp16"
    workspace_gib: float = 4.0
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class GateResult:
    precision: str
    mean_iou: float
    min_iou: float
    frames: int

    @property
    def passed(self) -> bool:
        return self.mean_iou >= self.min_iou

    @property
    def shortfall(self) -> float:
        """How far the mean IoU is below the bound (0 when it passes)."""
        return max(0.0, self.min_iou - self.mean_iou)

    def message(self) -> str:
        verdict = "passes" if self.passed else f"fails (short by {self.shortfall:.4f})"
        return (
            f"{self.precision} engine vs fp32 ONNX on {self.frames} frames: mean mask IoU {self.mean_iou:.4f}, "
            f"bound {self.min_iou:.4f}: {verdict}"
        )


def gpu_slug(gpu_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (safe in a file name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    if not slug:
        raise ValueError(f"GPU name {gpu_name!r} has no usable characters")
    return slug


def engine_path(onnx_path: str | os.PathLike, gpu_name: str, trt_version: str, precision: str) -> Path:
    """`refiner.<gpu>.<trt-version>.<precision>.engine` beside `refiner.onnx`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{gpu_slug(gpu_name)}.{trt_version}.{precision}.engine")


def timing_cache_path(onnx_path: str | os.PathLike, gpu_name: str, trt_version: str) -> Path:
    """Timing cache beside the ONNX, per GPU model and TensorRT version (shared by FP16 and INT8 builds)."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{gpu_slug(gpu_name)}.{trt_version}.timing.cache")


def masks_from_logits(logits: np.ndarray) -> np.ndarray:
    """(B, C, H, W) logits -> (B, H, W) uint8 class ids."""
    return np.asarray(logits).argmax(axis=1).astype(np.uint8)


def mask_iou(reference: np.ndarray, candidate: np.ndarray, num_classes: int) -> float:
    """Mean IoU over foreground classes of two HxW id masks; a class absent from both counts as 1."""
    if reference.shape != candidate.shape:
        raise ValueError(f"mask shapes differ: {reference.shape} vs {candidate.shape}")
    return float(np.mean([iou(candidate == cls, reference == cls) for cls in range(1, num_classes)]))


def accuracy_gate(
    reference_logits: Sequence[np.ndarray], candidate_logits: Sequence[np.ndarray], precision: str,
    min_iou: float | None = None,
) -> GateResult:
    """Mean over frames of the foreground mask IoU between candidate and reference (fp32) logits."""
    if len(reference_logits) != len(candidate_logits) or not reference_logits:
        raise ValueError(f"need the same, non-zero number of frames: {len(reference_logits)} vs "
                         f"{len(candidate_logits)}")
    bound = DEFAULT_MIN_IOU[precision] if min_iou is None else float(min_iou)
    ious = []
    for ref, cand in zip(reference_logits, candidate_logits):
        num_classes = np.asarray(ref).shape[1]
        for ref_mask, cand_mask in zip(masks_from_logits(ref), masks_from_logits(cand)):
            ious.append(mask_iou(ref_mask, cand_mask, num_classes))
    return GateResult(precision=precision, mean_iou=float(np.mean(ious)), min_iou=bound, frames=len(ious))


def require_gate(result: GateResult) -> None:
    """Refuse an engine below its bound, saying by how much."""
    if not result.passed:
        raise AccuracyGateError(f"TensorRT {result.message()}; engine not kept")
    log.info("TensorRT %s", result.message())


Profiles = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
"""A dynamic input's (min, opt, max) shapes, by input name: one optimisation profile."""


def build_engine(
    onnx_path: str | os.PathLike,
    engine_out: str | os.PathLike,
    config: BuildConfig,
    calibration: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    calibration_cache: str | os.PathLike | None = None,
    profiles: Profiles | None = None,
) -> Path:
    """Build a serialized engine from ONNX into `engine_out` (atomic), reusing and updating the timing cache;
    `profiles` gives the shapes of dynamic inputs (static ONNX files need none)."""
    import tensorrt as trt

    if config.precision == "int8" and calibration is None:
        raise ValueError("an INT8 build needs calibration inputs")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse the ONNX: {errors}")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))
    _attach_timing_cache(builder_config, config.timing_cache)
    builder_config.set_flag(trt.BuilderFlag.FP16)
    if config.precision == "int8":
        builder_config.set_flag(trt.BuilderFlag.INT8)
        builder_config.int8_calibrator = entropy_calibrator(calibration, calibration_cache)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profiles.items():
            profile.set_shape(name, low, opt, high)
        builder_config.add_optimization_profile(profile)
    log.info("building TensorRT %s engine from %s (minutes on first build)", config.precision, onnx_path)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT failed to build a {config.precision} engine (see its log above)")
    with atomic_path(engine_out) as tmp:
        tmp.write_bytes(bytes(serialized))
    if config.timing_cache is not None:
        with atomic_path(config.timing_cache) as tmp:
            tmp.write_bytes(bytes(builder_config.get_timing_cache().serialize()))
    return Path(engine_out)


def _attach_timing_cache(builder_config, path: Path | None) -> None:
    """Start the build from the timing cache at `path` when it exists (else an empty one)."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    builder_config.set_timing_cache(builder_config.create_timing_cache(data), ignore_mismatch=False)


def execute(context, stream, tensors: dict[str, Any]) -> None:
    """Run a TensorRT 10 execution context on a torch CUDA `stream` over named device tensors (inputs with their
    shapes already set, outputs allocated), ordered after and before the current stream's work."""
    import torch

    for name, tensor in tensors.items():
        context.set_tensor_address(name, tensor.data_ptr())
        tensor.record_stream(stream)
    stream.wait_stream(torch.cuda.current_stream())
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("TensorRT execute_async_v3 failed")
    torch.cuda.current_stream().wait_stream(stream)


def entropy_calibrator(inputs: Iterable[tuple[np.ndarray, np.ndarray]], cache_path: str | os.PathLike | None):
    """An `IInt8EntropyCalibrator2` feeding (image, prior) pairs of batch 1 from device buffers."""
    import tensorrt as trt
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = iter(inputs)
            self.device_buffers: dict[str, torch.Tensor] = {}
            self.cache_path = Path(cache_path) if cache_path is not None else None
            self.count = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            pair = next(self.batches, None)
            if pair is None:
                log.info("INT8 calibration used %d frames", self.count)
                return None
            self.count += 1
            tensors = dict(zip(("image", "prior"), pair))
            self.device_buffers = {
                name: torch.from_numpy(np.ascontiguousarray(tensors[name], dtype=np.float32)).cuda() for name in names
            }
            torch.cuda.synchronize()
            return [self.device_buffers[name].data_ptr() for name in names]

        def read_calibration_cache(self) -> bytes | None:
            if self.cache_path is not None and self.cache_path.is_file():
                return self.cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if self.cache_path is not None:
                with atomic_path(self.cache_path) as tmp:
                    tmp.write_bytes(bytes(cache))

    return EntropyCalibrator()
