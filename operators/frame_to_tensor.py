"""Hands one array of a surgseg message to a Holoscan built-in as a one-tensor map (`{name: array}`).

For `VideoStreamRecorderOp` (what `surgseg record` uses) and, on a GPU, `HolovizOp`: a capture graph shows
the overlay with `[overlay, to_tensor]`, `[to_tensor, holoviz]` and `holoviz: {type: HolovizOp, tensors:
[{name: video, type: color}]}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from surgseg.operators.base import Message, SurgsegOperator, first_present


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
        _, picture = first_present(inputs["in"], self.config.keys, self.name)
        return {"out": {self.config.tensor: picture}}
