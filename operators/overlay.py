"""`Overlay`: the frame with class colours, contours, the field of view's outline and a HUD (fps, end-to-end latency,
confidence, the SAM 2 prior's age when SAM 2 runs asynchronously, a warning when the mask hugs the FOV's rim)
→ `overlay`."""

from __future__ import annotations

import time
from dataclasses import dataclass

from surgseg.engines.fov import FieldOfView
from surgseg.engines.frame_qa import RimCover
from surgseg.engines.instance_overlay import draw_instances
from surgseg.engines.overlay import OverlayConfig, RateMeter, draw_overlay
from surgseg.engines.sam2.instances import message_instance_ids
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class OverlayOpConfig:
    opacity: float = 0.45
    contours: bool = True
    hud: bool = True
    fov_outline: bool = True
    """Outline the scope's field of view (when Preproc found one)."""


def prior_age_line(age: dict) -> str:
    """HUD line for an asynchronous prior: frames and ms since the frame SAM 2 made it on."""
    if age.get("frames") is None:
        return "prior: none yet"
    ms = age.get("ms")
    return f"prior age {age['frames']} fr" + ("" if ms is None else f" / {ms:.0f} ms")


class Overlay(SurgsegOperator):
    Config = OverlayOpConfig
    inputs = ("mask",)
    outputs = ("overlay",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.style = OverlayConfig(c.opacity, c.contours, c.hud, c.fov_outline)
        self.rate = RateMeter()

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["mask"]
        meta = message["meta"]
        fps = self.rate.tick(time.perf_counter())
        latency_ms = (time.perf_counter_ns() - meta["captured_ns"]) / 1e6 if "captured_ns" in meta else None
        lines = [f"frame {meta.get('frame_index', '?')}  {fps:5.1f} fps"]
        if latency_ms is not None:
            lines.append(f"latency {latency_ms:6.1f} ms")
        if "confidence" in meta:
            lines.append(f"confidence {meta['confidence']:.2f}")
        if "prior_age" in meta:
            lines.append(prior_age_line(meta["prior_age"]))
        if "fov_border" in meta and RimCover(**meta["fov_border"]).flagged():
            lines.append("QA: mask on FOV border")
        fov = FieldOfView.from_dict(meta["fov"]) if "fov" in meta else None
        image = draw_overlay(message["frame"], message["mask"], self.style, lines if self.style.hud else None, fov)
        ids = message_instance_ids(message)
        if ids is not None:
            image = draw_instances(image, ids, self.style.opacity)
        return {"overlay": {**message, "overlay": image}}
