"""Where the compute runs: `auto` picks CUDA when torch sees a GPU, else the CPU (numpy)."""

from __future__ import annotations

from surgseg.engines.errors import InputError


def resolve_device(requested: str) -> str:
    """'cpu' or 'cuda' for a graph's `device:` value; asking for CUDA without a GPU is an error."""
    import torch

    available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if requested == "cuda" and not available:
        raise InputError("device: 'cuda' requested but torch sees no CUDA GPU (use device: auto or cpu)")
    if requested not in ("cpu", "cuda"):
        raise InputError(f"device: expected auto, cpu or cuda, got {requested!r}")
    return requested
