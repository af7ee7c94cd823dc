"""A moving colour-bar test pattern: needs no file or device, for smoke graphs and overhead benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surgseg.operators.source import FrameSource


@dataclass
class TestPatternConfig:
    size: tuple[int, int] = (256, 256)
    """(height, width) of the frames."""
    frames: int = 100
    """Frames before the stream ends (0 = endless)."""
    fps: float = 30.0
    realtime: bool = False
    live: bool = False
    """Behave like a capture card: capture thread, bounded queue, drop-oldest."""


class TestPatternSource(FrameSource):
    __test__ = False  # not a pytest class
    Config = TestPatternConfig

    def open_stream(self) -> None:
        height, width = self.config.size
        bars = np.linspace(0, 255, width, dtype=np.float32)
        self._base = np.stack([np.tile(bars, (height, 1)), np.tile(bars[::-1], (height, 1)),
                               np.full((height, width), 128.0, np.float32)], axis=-1).astype(np.uint8)
        self._read = 0
        self.live = self.config.live

    def read_frame(self) -> np.ndarray | None:
        if self.config.frames and self._read >= self.config.frames:
            return None
        frame = np.roll(self._base, self._read * 4, axis=1)
        self._read += 1
        return frame

    def frame_period_s(self) -> float | None:
        return 1.0 / self.config.fps if self.config.realtime or self.config.live else None
