"""Where a frame's arrays live: numpy on the CPU, torch tensors on CUDA, exchanged zero-copy through DLPack.

On a GPU the source's frame is uploaded once (`to_device`) and every stage after it works on device tensors; only a
sink calls `to_numpy`. cupy arrays (e.g. from a Holoscan built-in) are viewed as torch tensors without a copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from surgseg.engines.errors import InputError

DEVICES = ("cpu", "cuda")


def array_kind(array: Any) -> str:
    """'numpy', 'torch' or 'cupy'; anything else is refused."""
    module = type(array).__module__.split(".")[0]
    if module in ("numpy", "torch", "cupy"):
        return module
    raise InputError(f"array: unsupported type {type(array).__name__} (expected numpy, torch or cupy)")


def as_torch(array: Any):
    """A torch tensor sharing `array`'s memory (numpy → CPU tensor, cupy → CUDA tensor via DLPack)."""
    import torch

    kind = array_kind(array)
    if kind == "torch":
        return array
    if kind == "numpy":
        return torch.from_numpy(np.ascontiguousarray(array))
    return torch.from_dlpack(array)


def to_device(array: Any, device: str) -> Any:
    """numpy for 'cpu' (a no-op for numpy input), a CUDA torch tensor for 'cuda' (one upload from the host)."""
    if device not in DEVICES:
        raise InputError(f"device: expected cpu or cuda, got {device!r}")
    if device == "cpu":
        return to_numpy(array)
    tensor = as_torch(array)
    return tensor if tensor.is_cuda else tensor.to("cuda")


def to_numpy(array: Any) -> np.ndarray:
    """A host numpy array: no copy for numpy or CPU tensors, one download for device arrays (sinks only)."""
    kind = array_kind(array)
    if kind == "numpy":
        return array
    if kind == "cupy":
        return array.get()
    return array.detach().cpu().numpy()


def is_on_device(array: Any) -> bool:
    """True for CUDA tensors and cupy arrays."""
    kind = array_kind(array)
    return kind == "cupy" or (kind == "torch" and array.is_cuda)
