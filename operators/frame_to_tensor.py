"""Hands one array of a surgseg message to a Holoscan built-in as a one-tensor map (`{name: array}`).

For `VideoStreamRecorderOp` (what `surgseg record` uses) and, on a GPU, `HolovizOp`: a capture graph shows
the overlay with `[overlay, to_tensor]`, `[to_tensor, holoviz]` and `holoviz: {type: HolovizOp, tensors:
[{name: video, type: color}]}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from surgseg.engines.errors import InputError
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class FrameToTensorConfig:
    keys: list[str] = field(default_factory=lambda: ["overlay", "frame"])
    """Message keys to look for, first present wins."""
    tensor: str = "video"
    """Name of the emitted tensor."""


class FrameToTensor(SurgsegOperator):
    Config = FrameToTensorConfig
    inputs = ("in",)
    outputs = ("out",)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["in"]
        for key in self.config.keys:
            if message.get(key) is not None:
                return {"out": {self.config.tensor: message[key]}}
        raise InputError(f"operators.{self.name}.keys: none of {', '.join(self.config.keys)} in the message")
