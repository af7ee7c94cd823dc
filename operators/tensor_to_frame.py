"""Turns a Holoscan built-in's tensor map (e.g. `VideoStreamReplayerOp`'s `{'video': Tensor}`) into a frame message.

This is how a Holoscan recording (`.gxf_entities`/`.gxf_index`) enters a surgseg graph: the built-in replayer
reads and paces it (`realtime`, `frame_rate`, `repeat`), this adapter adds the `meta` the rest of the graph
expects. The picture is copied once: the built-in reuses the tensor's memory after the message is consumed.
See graphs/replay_recording.yaml.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.rgb import as_rgb
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class TensorToFrameConfig:
    tensor: str | None = None
    """Name of the tensor holding the picture (None: the map's only tensor)."""


class TensorToFrame(SurgsegOperator):
    Config = TensorToFrameConfig
    inputs = ("in",)
    outputs = ("frame",)

    def start(self) -> None:
        self.frames = 0

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        captured_ns = time.perf_counter_ns()
        tensor = self._pick(inputs["in"])
        if hasattr(tensor, "__cuda_array_interface__") and not hasattr(tensor, "__array_interface__"):
            import cupy

            frame = cupy.array(tensor, copy=True)
        else:
            frame = as_rgb(np.array(tensor, copy=True), f"operators.{self.name}")
        meta = {"frame_index": self.frames, "timestamp_ns": time.time_ns(), "captured_ns": captured_ns,
                "dropped_total": 0, "timings_ms": {}}
        self.frames += 1
        return {"frame": {"frame": frame, "meta": meta}}

    def _pick(self, received: Any) -> Any:
        if not isinstance(received, dict) or not received:
            raise InputError(f"operators.{self.name}: expected a tensor map, got {type(received).__name__}")
        name = self.config.tensor
        if name is None:
            if len(received) != 1:
                raise InputError(f"operators.{self.name}.tensor: the map holds {', '.join(received)}: name one")
            return next(iter(received.values()))
        if name not in received:
            raise InputError(f"operators.{self.name}.tensor: no tensor '{name}' (got {', '.join(received)})")
        return received[name]
