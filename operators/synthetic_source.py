"""Frames of a synthetic endoscopy clip with exact ground truth (`gt_mask`) and event `tags` per frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surgseg.engines.video.synthetic import EVENT_TAGS, SyntheticClip, SyntheticClipConfig
from surgseg.operators.source import FrameSource


@dataclass
class SyntheticSourceConfig:
    size: tuple[int, int] = (320, 256)
    """(width, height) of the frames."""
    frames: int = 48
    num_classes: int = 2
    seed: int = 0
    presence: list[tuple[int, int]] | None = None
    """[start, end) frame intervals with the instrument in view (None: drawn from `seed`)."""
    smoke: list[tuple[int, int]] | None = None
    occlusion: list[tuple[int, int]] | None = None
    glare: list[tuple[int, int]] | None = None
    fast_motion: list[tuple[int, int]] | None = None
    """Event intervals like `presence` ([] = never, None = drawn from `seed`)."""
    domain: bool = False
    """Randomise the look like real footage: field-of-view shape with on-screen text, tissue palette, instrument
    finish, exposure, lens, fluid (drawn from `seed`)."""
    fov: str | None = None
    """Field-of-view shape (circle, octagon, ...; None: drawn when `domain`, else the full frame)."""
    palette: str | None = None
    """Tissue palette (liver, mucosa, ...; None: drawn when `domain`, else the classic one)."""
    fps: float = 30.0
    realtime: bool = False
    live: bool = False
    """Behave like a capture card: paced capture thread, bounded queue, oldest frame dropped and counted."""


class SyntheticSource(FrameSource):
    Config = SyntheticSourceConfig

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        c = self.config
        events = {name: _intervals(getattr(c, name)) for name in ("presence", *EVENT_TAGS)}
        self.clip = SyntheticClip(SyntheticClipConfig(size=tuple(c.size), frames=c.frames,
                                                      num_classes=c.num_classes, seed=c.seed, domain=c.domain,
                                                      fov=c.fov, palette=c.palette, **events))
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


def _intervals(spans: list[tuple[int, int]] | None) -> tuple[tuple[int, int], ...] | None:
    return None if spans is None else tuple((int(start), int(end)) for start, end in spans)
