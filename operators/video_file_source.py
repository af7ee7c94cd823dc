"""Frames of a video file (mp4, mov, mkv, avi, ... via PyAV), paced at the file's frame rate or as fast as possible."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from surgseg.engines.config import ExistingPath
from surgseg.engines.video.io import VideoReader, probe
from surgseg.operators.source import FrameSource

log = logging.getLogger(__name__)


@dataclass
class VideoFileSourceConfig:
    path: Annotated[str, ExistingPath]
    realtime: bool = False
    """Pace frames at the file's frame rate (False: as fast as the graph takes them, nothing dropped)."""
    loop: bool = False
    """Start again at `start_frame` after the last frame (ends only on stop or the run's frame limit)."""
    start_frame: int = 0
    end_frame: int | None = None
    """First frame index not emitted (None: to the end of the file)."""
    live: bool = False
    """Behave like a capture card: paced capture thread, bounded queue, oldest frame dropped and counted."""


class VideoFileSource(FrameSource):
    Config = VideoFileSourceConfig

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        self.info = probe(self.config.path)
        self._reader: VideoReader | None = None

    def open_stream(self) -> None:
        self.live = self.config.live
        self._reader = self._open_reader()
        log.info("%s: %s %dx%d %.3f fps, %s frames (%s)", self.name, self.config.path, self.info.width,
                 self.info.height, self.info.fps, self.info.frames or "?", self.info.codec)

    def _open_reader(self) -> VideoReader:
        return VideoReader(self.config.path, self.config.start_frame, self.config.end_frame)

    def read_frame(self) -> dict[str, Any] | None:
        frame = self._reader.read()
        if frame is None and self.config.loop:
            self._reader.close()
            self._reader = self._open_reader()
            frame = self._reader.read()
        if frame is None:
            return None
        return {"frame": frame, "meta": {"source_index": self._reader.index - 1, "fps": self.info.fps}}

    def close_stream(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def frame_period_s(self) -> float | None:
        return 1.0 / self.info.fps if self.config.realtime or self.config.live else None
