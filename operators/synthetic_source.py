"""Frames of a synthetic endoscopy clip with exact ground truth (`gt_mask`) and event `tags` per frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surgseg.engines.synthetic import SyntheticClip, SyntheticClipConfig
from surgseg.operators.source import FrameSource


@dataclass
class SyntheticSourceConfig:
    size: tuple[int, int] = (320, 256)
    """(width, height) of the frames."""
    frames: int = 48
    num_classes: int = 2
    seed: int = 0
    fps: float = 30.0
    realtime: bool = False
    live: bool = False
    """Behave like a capture card: paced capture thread, bounded queue, oldest frame dropped and counted."""


class SyntheticSource(FrameSource):
    Config = SyntheticSourceConfig

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        c = self.config
        self.clip = SyntheticClip(SyntheticClipConfig(size=tuple(c.size), frames=c.frames,
                                                      num_classes=c.num_classes, seed=c.seed))
        self._next = 0

    def open_stream(self) -> None:
        self.live = self.config.live
        self._next = 0

    def read_frame(self) -> dict[str, Any] | None:
        if self._next >= len(self.clip):
            return None
        frame, mask, tags = self.clip.render(self._next)
        self._next += 1
        return {"frame": frame, "gt_mask": mask, "tags": tags,
                "meta": {"source_index": self._next - 1, "fps": self.config.fps,
                         "sequence": f"synthetic-{self.config.seed}"}}

    def frame_period_s(self) -> float | None:
        return 1.0 / self.config.fps if self.config.realtime or self.config.live else None
