"""One API over the refiner's inference backends: TensorRT, torch (exported program), ONNX Runtime.

`RefinerRuntime(artifact, RuntimeConfig(backend="auto"))` picks the fastest backend present
(tensorrt > torch on CUDA > onnxruntime on CUDA > onnxruntime on CPU) and logs its choice. `run(image, prior)`
takes numpy arrays (CPU) or torch/cupy arrays (GPU, exchanged through DLPack, no host copies) of the artefact's
static shapes and returns logits of the same array kind. The TensorRT backend follows the documented TensorRT 10
Python API and is unverified until it has run on a GPU with TensorRT's libraries.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from surgseg.engines.array_backend import array_kind, as_torch, to_numpy
from surgseg.engines.device import resolve_device
from surgseg.engines.errors import InputError
from surgseg.engines.onnx_files import ort_session
from surgseg.engines.refiner.artifact import INPUT_NAMES, OUTPUT_NAME, RefinerArtifact
from surgseg.engines.refiner.trt_engine import (PRECISIONS, BuildConfig, build_engine, engine_path, execute,
                                                timing_cache_path)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "auto"
    device: str = "auto"
    threads: int = 2
    fp16: bool = True
    cuda_graph: bool = True
    precision: str = "fp16"
    engine: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.threads < 1:
            raise InputError(f"threads: must be >= 1, got {self.threads}")


class RefinerRuntime:
    """Runs an exported refiner on the chosen backend; arrays in, logits out."""

    def __init__(self, artifact: RefinerArtifact | str | os.PathLike, config: RuntimeConfig | None = None) -> None:
        self.artifact = artifact if isinstance(artifact, RefinerArtifact) else RefinerArtifact.load(artifact)
        self.config = config or RuntimeConfig()
        self.backend_name, reason = choose_backend(self.config, self.artifact)
        log.info("refiner backend: %s (%s)", self.backend_name, reason)
        self._backend = _BACKEND_TYPES[self.backend_name](self.artifact, self.config)

    @property
    def device(self) -> str:
        return self._backend.device

    def run(self, image: Any, prior: Any) -> Any:
        """Logits (1, C, H, W) float32 for image (1, 3, H, W) and prior (1, C-1, H, W), same array kind as image."""
        kind = array_kind(image)
        tensors = [_to_torch(array, name) for array, name in zip((image, prior), INPUT_NAMES)]
        expected = (self.artifact.image_shape(), self.artifact.prior_shape())
        for tensor, name, shape in zip(tensors, INPUT_NAMES, expected):
            if tuple(tensor.shape) != shape:
                raise InputError(f"refiner input '{name}': shape {tuple(tensor.shape)} != artefact's {shape}")
        return _from_torch(self._backend.run(*tensors), kind)


def choose_backend(config: RuntimeConfig, artifact: RefinerArtifact) -> tuple[str, str]:
    """(backend name, why) for the config; 'auto' takes the fastest one present."""
    cuda = resolve_device(config.device) == "cuda"
    if config.backend != "auto":
        if config.backend == "tensorrt" and not (cuda and tensorrt_usable()):
            raise InputError("backend: 'tensorrt' needs a CUDA device and the tensorrt package")
        return config.backend, "asked for"
    if cuda and tensorrt_usable():
        return "tensorrt", "auto: CUDA device and tensorrt present"
    if cuda and "torch" in artifact.files:
        return "torch", "auto: CUDA device, no tensorrt"
    if cuda and "CUDAExecutionProvider" in _ort_providers():
        return "onnxruntime", "auto: CUDA device, onnxruntime CUDA provider, no torch program"
    return "onnxruntime", "auto: CPU" if not cuda else "auto: no faster GPU backend present"


def _to_torch(array: Any, name: str):
    tensor = as_torch(array)
    if not tensor.is_floating_point():
        raise InputError(f"refiner input '{name}': expected floating point, got {tensor.dtype}")
    return tensor


def _from_torch(tensor, kind: str) -> Any:
    """Logits as the caller's array kind: numpy (one download when computed on a GPU), torch, or cupy (DLPack)."""
    if kind == "numpy":
        return to_numpy(tensor)
    if kind == "cupy":
        import cupy

        return cupy.from_dlpack(tensor)
    return tensor


@functools.cache
def tensorrt_usable() -> bool:
    """True when `tensorrt` imports, i.e. its libraries load (the bindings wheel alone installs but cannot)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError) as exc:
        log.info("tensorrt present but unusable: %s", exc)
        return False
    return True


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class _OnnxRuntimeBackend:
    """ONNX Runtime: CPU provider with `threads` intra-op threads, or CUDA provider with IO binding."""

    def __init__(self, artifact: RefinerArtifact, config: RuntimeConfig) -> None:
        cuda = resolve_device(config.device) == "cuda" and "CUDAExecutionProvider" in _ort_providers()
        self.device = "cuda" if cuda else "cpu"
        self.session = ort_session(artifact.file("onnx"), config.threads, cuda)
        self.logits_shape = artifact.logits_shape()

    def run(self, image, prior):
        if self.device == "cpu":
            import torch

            arrays = (t.detach().cpu().float().contiguous().numpy() for t in (image, prior))
            feeds = dict(zip(INPUT_NAMES, arrays))
            return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0])
        return self._run_bound(image, prior)

    def _run_bound(self, image, prior):
        """Device buffers bound in place: inputs and output stay on the GPU."""
        import numpy as np
        import torch

        inputs = [t.to("cuda", torch.float32).contiguous() for t in (image, prior)]
        logits = torch.empty(self.logits_shape, device="cuda", dtype=torch.float32)
        binding = self.session.io_binding()
        device_id = torch.cuda.current_device()
        for name, tensor in zip(INPUT_NAMES, inputs):
            binding.bind_input(name, "cuda", device_id, np.float32, tuple(tensor.shape), tensor.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", device_id, np.float32, self.logits_shape, logits.data_ptr())
        torch.cuda.current_stream().synchronize()
        self.session.run_with_iobinding(binding)
        return logits


class _TorchBackend:
    """The exported program (`refiner.pt2`), BatchNorm folded into the convolutions: fp32 on CPU; fp16 and CUDA-graph
    replay on a GPU. NCHW throughout: on an H200 at 736×1280 the folded refiner ran 2.29 ms NCHW vs 2.55 ms
    channels_last (benchmarks/results/gpu_fastpath.json)."""

    def __init__(self, artifact: RefinerArtifact, config: RuntimeConfig) -> None:
        import torch

        self.device = resolve_device(config.device)
        self.dtype = torch.float16 if self.device == "cuda" and config.fp16 else torch.float32
        program = torch.export.load(str(artifact.file("torch")))
        if self.device != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, self.device)
        module = program.module()
        folded = fold_batchnorm(module)
        log.info("refiner torch backend: %d BatchNorm folded, %s", folded, self.dtype)
        self.module = module.to(self.dtype)
        self.graph = None
        if self.device == "cuda" and config.cuda_graph:
            self._capture(artifact)

    def _capture(self, artifact: RefinerArtifact) -> None:
        """Record one forward pass into a CUDA graph over static input/output buffers."""
        import torch

        from surgseg.engines.sam2.cuda_graph import capture_graph

        shapes = (artifact.image_shape(), artifact.prior_shape())
        self.static_inputs = [torch.zeros(shape, device="cuda", dtype=self.dtype) for shape in shapes]
        self.graph, self.static_output = capture_graph(self.module, self.static_inputs)

    def run(self, image, prior):
        import torch

        with torch.inference_mode():
            if self.graph is None:
                inputs = [t.to(self.device, self.dtype).contiguous() for t in (image, prior)]
                output = self.module(*inputs)
            else:
                for static, tensor in zip(self.static_inputs, (image, prior)):
                    static.copy_(tensor, non_blocking=True)
                self.graph.replay()
                output = self.static_output
            # Always a new contiguous float32 tensor: the graph's output buffer is overwritten by the next replay.
            return output.to(torch.float32, copy=True)


def fold_batchnorm(module: torch.fx.GraphModule) -> int:
    """Fold every inference BatchNorm that directly follows a convolution (its only user) into that conv's weight and
    bias, in place (`torch.nn.utils.fusion.fuse_conv_bn_weights`); returns how many were folded."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    graph = module.graph
    folded = 0
    for bn in list(graph.nodes):
        parts = _inference_batch_norm(bn)
        if parts is None:
            continue
        conv, bn_weight, bn_bias, mean, var, eps, output = parts
        if not _is_conv(conv) or len(conv.users) != 1:
            continue
        params = (bn_weight, bn_bias, mean, var)
        conv_args = list(conv.args) + [None] * max(0, 3 - len(conv.args))
        if not all(p is None or p.op == "get_attr" for p in (*params, conv_args[1], conv_args[2])):
            continue
        weight, bias = fuse_conv_bn_weights(
            _attr(module, conv_args[1]), _attr(module, conv_args[2]), *(_attr(module, p) for p in params[2:]), eps,
            *(_attr(module, p) for p in params[:2]),
        )
        names = [f"_bn_folded_{folded}_{kind}" for kind in ("weight", "bias")]
        for name, value in zip(names, (weight, bias)):
            module.register_parameter(name, torch.nn.Parameter(value.detach(), requires_grad=False))
        with graph.inserting_before(conv):
            conv_args[1], conv_args[2] = (graph.get_attr(name) for name in names)
        conv.args = tuple(conv_args)
        output.replace_all_uses_with(conv)
        for node in dict.fromkeys((output, bn)):
            graph.erase_node(node)
        folded += 1
    if folded:
        graph.eliminate_dead_code()
        module.delete_all_unused_submodules()
        module.recompile()
    return folded


def _is_conv(node: Any) -> bool:
    """A 2-D convolution node (input, weight, bias, ...): `aten.conv2d`, or `aten.convolution` not transposed."""
    import torch

    aten = torch.ops.aten
    target = getattr(node, "target", None)
    return target == aten.conv2d.default or (target == aten.convolution.default and not node.args[6])


def _inference_batch_norm(node: Any) -> tuple | None:
    """(input, weight, bias, running mean, running var, eps, node whose value the BN yields) for an eval-mode
    BatchNorm node of an exported program (`aten.batch_norm`, or `_native_batch_norm_legit_no_training` read only
    through item 0), else None."""
    import operator

    import torch

    aten = torch.ops.aten
    if node.op != "call_function":
        return None
    if node.target == aten.batch_norm.default:
        x, weight, bias, mean, var, training, _momentum, eps = node.args[:8]
        return None if training else (x, weight, bias, mean, var, eps, node)
    if node.target == aten._native_batch_norm_legit_no_training.default:
        x, weight, bias, mean, var, _momentum, eps = node.args[:7]
        users = list(node.users)
        if len(users) != 1 or users[0].target is not operator.getitem or users[0].args[1] != 0:
            return None
        return x, weight, bias, mean, var, eps, users[0]
    return None


def _attr(module: Any, node: Any) -> Any:
    """The tensor a get_attr node names (None stays None)."""
    return None if node is None else functools.reduce(getattr, node.target.split("."), module)


class _TensorRTBackend:
    """A serialized TensorRT engine run on its own CUDA stream over torch device buffers (TensorRT 10 API)."""

    def __init__(self, artifact: RefinerArtifact, config: RuntimeConfig) -> None:
        import tensorrt as trt
        import torch

        self.device = "cuda"
        path = Path(config.engine) if config.engine else self._cached_engine(artifact, config.precision)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise InputError(f"{path}: TensorRT could not deserialize this engine (other GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted((*INPUT_NAMES, OUTPUT_NAME)):
            raise InputError(f"{path}: engine tensors {names} are not {[*INPUT_NAMES, OUTPUT_NAME]}")
        self.logits_shape = tuple(self.engine.get_tensor_shape(OUTPUT_NAME))
        self.stream = torch.cuda.Stream()

    @staticmethod
    def _cached_engine(artifact: RefinerArtifact, precision: str) -> Path:
        """The engine beside the ONNX for this GPU and TensorRT version, built (FP16) when missing."""
        import tensorrt as trt
        import torch

        onnx_path = artifact.file("onnx")
        gpu = torch.cuda.get_device_name()
        path = engine_path(onnx_path, gpu, trt.__version__, precision)
        if path.is_file():
            return path
        if precision != "fp16":
            raise InputError(f"{path}: no {precision} engine for this GPU; build it with `surgseg export --trt --int8`")
        log.warning("%s missing: building it now (no accuracy gate: `surgseg export --trt` applies one)", path.name)
        cache = timing_cache_path(onnx_path, gpu, trt.__version__)
        return build_engine(onnx_path, path, BuildConfig(precision="fp16", timing_cache=cache))

    def run(self, image, prior):
        import torch

        inputs = [t.to("cuda", torch.float32).contiguous() for t in (image, prior)]
        logits = torch.empty(self.logits_shape, device="cuda", dtype=torch.float32)
        execute(self.context, self.stream, dict(zip((*INPUT_NAMES, OUTPUT_NAME), (*inputs, logits))))
        return logits


_BACKEND_TYPES = {"onnxruntime": _OnnxRuntimeBackend, "torch": _TorchBackend, "tensorrt": _TensorRTBackend}
