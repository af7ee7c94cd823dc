"""`Preproc`: upload the frame once (on a GPU), crop it to the scope's field of view, letterbox it to the model size
and normalise it → `image`.

`fov: {enabled: true, every: 15}` finds the field of view (`surgseg.engines.fov`, every N frames and on a scene
cut) and letterboxes only its bounding box, so more model pixels land on tissue; the crop is part of
`meta["letterbox"]` and the FOV itself travels as `meta["fov"]`."""

from __future__ import annotations

from dataclasses import dataclass, field

from surgseg.engines.array_backend import to_device
from surgseg.engines.errors import InputError
from surgseg.engines.fov import FovTracker, FovTrackerConfig
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, model_input
from surgseg.operators.base import Message, SurgsegOperator


@dataclass(frozen=True)
class FovConfig(FovTrackerConfig):
    enabled: bool = False
    """Crop to the detected field of view (the shipped graphs turn it on)."""


@dataclass
class PreprocConfig:
    size: tuple[int, int] = (256, 256)
    """Model input (height, width); SAM 2 and the refiner both see this letterboxed image."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fov: FovConfig = field(default_factory=FovConfig)

    def __post_init__(self) -> None:
        if min(self.size) < 32:
            raise InputError(f"size: {list(self.size)} is too small (at least 32 px per side)")
        if min(self.std) <= 0:
            raise InputError(f"std: must be positive, got {list(self.std)}")


class Preproc(SurgsegOperator):
    """Adds `image` (1×3×h×w float32), `meta.letterbox` and (FOV on) `meta.fov` to the frame message; the frame
    moves to the device."""

    Config = PreprocConfig
    inputs = ("frame",)
    outputs = ("image",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fov_tracker = FovTracker(self.config.fov) if self.config.fov.enabled else None

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["frame"]
        frame = to_device(message["frame"], self.device)
        crop = None
        if self.fov_tracker is not None:
            fov = self.fov_tracker.update(frame)
            message["meta"]["fov"] = fov.to_dict()
            crop = fov.bbox
        image, geometry = model_input(frame, tuple(self.config.size), self.config.mean, self.config.std, crop)
        message["meta"]["letterbox"] = geometry.to_dict()
        return {"image": {**message, "frame": frame, "image": image}}
