"""SAM 2's image encoder (`model.forward_image` on a static (1,3,S,S) input) captured once in a CUDA graph, replayed
per frame: one graph launch instead of hundreds of kernel launches and autocast casts per frame.

Capture: after `warmup` eager calls on a side stream (cuDNN/cuBLAS choose their kernels, SAM 2's positional
encoding fills its cache), one call is recorded under `torch.autocast(dtype, cache_enabled=False)` (autocast's
weight-cast cache must be off while capturing: its casts become graph kernels instead of dangling cached tensors).

Aliasing: a replay writes its outputs into the same device buffers every time. With `clone_outputs=True` (default)
every call returns fresh copies (a few device-to-device copies, ~µs on a GPU) and callers may keep them as long as they
like. With `clone_outputs=False` the call returns the graph's own buffers: the NEXT call overwrites them, so the caller
must copy whatever it keeps beyond the next encode. StreamingSAM2 keeps the newest frame's backbone features
(`_features`) and encodes that frame's memory from them at the start of the next `step`, before encoding the next
frame, so the static buffers suffice for `step`; `image_logits` (which encodes an extra frame between steps) would
clobber the tracked frame's features, which is why cloning is the default.

Only CUDA: on any other device the constructor raises InputError. `capture_graph` is the generic capture (the refiner's
torch backend uses it too).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch

from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)


class EncoderGraph:
    """`model.forward_image` for (1,3,S,S) float inputs, replayed from a CUDA graph."""

    def __init__(
        self, model: torch.nn.Module, dtype: torch.dtype | None = None, *, warmup: int = 3, clone_outputs: bool = True,
    ) -> None:
        """Capture `model.forward_image` (a SAM2Base on CUDA) at `model.image_size` under autocast to `dtype`."""
        device = next(model.parameters()).device
        if device.type != "cuda" or not torch.cuda.is_available():
            raise InputError(f"runtime.cuda_graph: CUDA graphs need the SAM 2 model on a CUDA device, got {device}")
        if warmup < 1:
            raise InputError(f"runtime.cuda_graph: warmup must be >= 1, got {warmup}")
        self.forward: Callable[[torch.Tensor], Any] = model.forward_image
        self.dtype = dtype
        self.clone_outputs = clone_outputs
        image_size = int(model.image_size)
        self.input_shape = (1, 3, image_size, image_size)
        self.static_input = torch.zeros(self.input_shape, device=device, dtype=torch.float32)
        self.graph, self.static_output = capture_graph(self.forward, [self.static_input], warmup, dtype)
        log.info("SAM 2 image encoder captured in a CUDA graph at %d px (%s)", image_size, dtype or torch.float32)

    def __call__(self, image: torch.Tensor) -> Any:
        """The encoder's output dict for `image` (1,3,S,S): fresh tensors, or the graph's buffers (see module doc)."""
        if tuple(image.shape) != self.input_shape or not image.is_floating_point():
            raise InputError(f"image: expected a {self.input_shape} float tensor for the captured encoder, "
                             f"got {tuple(image.shape)} {image.dtype}")
        with torch.inference_mode():
            self.static_input.copy_(image, non_blocking=True)
            self.graph.replay()
            return map_tensors(self.static_output, torch.clone) if self.clone_outputs else self.static_output


def capture_graph(
    fn: Callable[..., Any], static_inputs: list[torch.Tensor], warmup: int = 3, dtype: torch.dtype | None = None,
) -> tuple[torch.cuda.CUDAGraph, Any]:
    """(graph, static outputs) of `fn(*static_inputs)` recorded after `warmup` eager calls on a side stream, under
    inference mode and, with `dtype`, CUDA autocast without its weight cache. Replaying reads the current contents of
    `static_inputs` and overwrites the static outputs in place."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode():
        with torch.cuda.stream(side), _autocast(dtype):
            for _ in range(warmup):
                fn(*static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph), _autocast(dtype):
            output = fn(*static_inputs)
    return graph, output


def _autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype, cache_enabled=False)


def map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to every tensor inside nested dicts, lists and tuples (other values unchanged)."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {key: map_tensors(item, fn) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(item, fn) for item in value)
    return value
