"""ONNX files for every exported model (the refiner, SAM 2's streaming modules): writing and checking them, the
versions that wrote them, and the ONNX Runtime session that runs them."""

from __future__ import annotations

import importlib.metadata as md
import os
import warnings
from pathlib import Path
from typing import Any

import torch

MIN_OPSET = 17


class ExportCheckError(RuntimeError):
    """An exported model disagrees with the torch model beyond the tolerance: nothing is written."""


def write_onnx(module: torch.nn.Module, example: Any, path: Path, opset: int, input_names: list[str],
               output_names: list[str], dynamic_axes: dict[str, dict[int, str]] | None = None) -> None:
    """TorchScript-based ONNX export (constant folding on), then `onnx.checker` with shapes inferred."""
    import onnx

    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # data-dependent Python branches
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")  # exporter notes
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    onnx.checker.check_model(str(path), full_check=True)


def exporter_versions() -> dict[str, str]:
    """The versions of the packages that export (recorded in every artefact's metadata)."""
    versions = {}
    for name in ("surgseg", "torch", "sam2", "onnx", "onnxruntime"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "source tree (not installed)" if name == "surgseg" else "absent"
    return versions


def ort_session(path: str | os.PathLike, threads: int = 0, cuda: bool = False, spinning: bool = True):
    """An ONNX Runtime session: full graph optimisation, `threads` intra-op threads (0 = every core), one inter-op
    thread, the CUDA provider first when asked for and available. `spinning=False` stops idle threads from
    busy-waiting, for sessions that share the CPU with other work (SAM 2 beside the fast path)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: shape-merge warnings on padded inputs are harmless
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)
