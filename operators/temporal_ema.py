"""`TemporalEMA`: smoothed, cleaned class-id `mask` at source resolution from the refiner's `logits` (background
outside `meta["fov"]`, the scope's field of view, when Preproc found one; then `meta["fov_border"]` says how much of
the mask lies on the FOV's rim, which QA and the HUD flag)."""

from __future__ import annotations

from dataclasses import dataclass

from surgseg.engines.fov import FieldOfView
from surgseg.engines.frame_qa import rim_cover
from surgseg.engines.letterbox import LetterboxGeometry
from surgseg.engines.temporal import TemporalConfig, TemporalFilter
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class TemporalEMAConfig:
    alpha: float = 0.7
    """Weight of the current frame's logits (1.0 = no smoothing)."""
    fill_holes: bool = True
    min_area: int = 64
    """Components smaller than this (source pixels) are removed."""
    scene_cut: float = 0.5
    """Grey-histogram distance (0..1) between frames that resets the filter; 1.0 = never."""


class TemporalEMA(SurgsegOperator):
    """Adds `mask` (H×W uint8) and meta `confidence`, `scene_cut`, `held` (non-finite logits) to the message."""

    Config = TemporalEMAConfig
    inputs = ("logits",)
    outputs = ("mask",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.filter = TemporalFilter(TemporalConfig(c.alpha, c.fill_holes, c.min_area, c.scene_cut))
        self.held_frames = 0
        self.scene_cuts = 0

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["logits"]
        meta = message["meta"]
        geometry = LetterboxGeometry(**meta["letterbox"]) if "letterbox" in meta else None
        fov = FieldOfView.from_dict(meta["fov"]) if "fov" in meta else None
        result = self.filter.update(message["logits"], message["frame"], geometry, fov)
        self.held_frames += result.held
        self.scene_cuts += result.scene_cut
        meta.update(confidence=result.confidence, scene_cut=result.scene_cut, held=result.held)
        rim = None if fov is None else rim_cover(result.mask, fov)
        if rim is not None:
            meta["fov_border"] = rim.to_dict()
        return {"mask": {**message, "mask": result.mask}}
