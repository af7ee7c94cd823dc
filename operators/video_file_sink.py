"""Writes each message's `overlay` (else its `frame`) to an H.264 MP4 that stays playable on stop, signal or error."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.video.io import VideoWriter
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class VideoFileSinkConfig:
    path: str
    fps: float | None = None
    """Frame rate of the file (None: the source's, from the first message's `meta['fps']`, else 30)."""
    key: str | None = None
    """Message key to write (None: `overlay` when present, else `frame`)."""
    crf: int = 23
    preset: str = "superfast"


class VideoFileSink(SurgsegOperator):
    Config = VideoFileSinkConfig
    inputs = ("in",)

    def start(self) -> None:
        self.writer: VideoWriter | None = None

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        key = self.config.key or ("overlay" if message.get("overlay") is not None else "frame")
        if self.writer is None:
            fps = self.config.fps or message["meta"].get("fps") or 30.0
            self.writer = VideoWriter(self.config.path, fps=fps, crf=self.config.crf, preset=self.config.preset)
        self.writer.write(to_numpy(message[key]))

    @property
    def frames_written(self) -> int:
        return 0 if self.writer is None else self.writer.frames_written

    def stop(self) -> None:
        if self.writer is None:
            log.warning("%s: no frame arrived: %s not written", self.name, self.config.path)
            return
        self.writer.close()
        if self.writer.failed:
            log.warning("%s: %s holds the complete fragments written before the error (at most %d frames)",
                        self.name, self.config.path, self.writer.frames_written)
        else:
            log.info("%s: wrote %d frames to %s", self.name, self.writer.frames_written, self.config.path)
