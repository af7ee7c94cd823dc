"""`Preproc`: upload the frame once (on a GPU), letterbox it to the model size and normalise it → `image`."""

from __future__ import annotations

from dataclasses import dataclass

from surgseg.engines.array_backend import to_device
from surgseg.engines.errors import InputError
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, model_input
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class PreprocConfig:
    size: tuple[int, int] = (256, 256)
    """Model input (height, width); SAM 2 and the refiner both see this letterboxed image."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if min(self.size) < 32:
            raise InputError(f"size: {list(self.size)} is too small (at least 32 px per side)")
        if min(self.std) <= 0:
            raise InputError(f"std: must be positive, got {list(self.std)}")


class Preproc(SurgsegOperator):
    """Adds `image` (1×3×h×w float32) and `meta.letterbox` to the frame message; the frame moves to the device."""

    Config = PreprocConfig
    inputs = ("frame",)
    outputs = ("image",)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["frame"]
        frame = to_device(message["frame"], self.device)
        image, geometry = model_input(frame, tuple(self.config.size), self.config.mean, self.config.std)
        message["meta"]["letterbox"] = geometry.to_dict()
        return {"image": {**message, "frame": frame, "image": image}}
