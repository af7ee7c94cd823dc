"""Frames from a GStreamer pipeline ending in `appsink` (SDI capture cards: DeckLink, AJA), as a live source.

Needs GStreamer's Python bindings (optional: `surgseg graph check` names what to install when they are missing).
Frames are read on `FrameSource`'s live capture thread (bounded queue, oldest dropped and counted); the pipeline
handling lives in engines/video/gst.py. End-of-stream, a pipeline error or `frame_timeout_s` without a frame ends
the stream cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.video.gst import GstReader, check_pipeline_text, gst_missing, missing_elements
from surgseg.operators.source import FrameSource


@dataclass
class GstSourceConfig:
    pipeline: str
    """GStreamer pipeline description ending in appsink, e.g. 'decklinkvideosrc ! videoconvert ! appsink'."""
    frame_timeout_s: float = 5.0
    """No frame for this long ends the stream (signal lost)."""

    def __post_init__(self) -> None:
        check_pipeline_text(self.pipeline, "pipeline")
        if self.frame_timeout_s <= 0:
            raise InputError(f"frame_timeout_s: must be positive, got {self.frame_timeout_s}")


class GstSource(FrameSource):
    Config = GstSourceConfig
    live: ClassVar[bool] = True

    @staticmethod
    def missing_prerequisites(config: GstSourceConfig, key: str) -> list[str]:
        """The bindings or pipeline elements this machine lacks (one line each, naming what to install)."""
        missing = gst_missing()
        if missing:
            return [f"{key}: {missing}"]
        return missing_elements(config.pipeline, f"{key}.pipeline")

    def __init__(self, fragment: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(fragment, *args, **kwargs)
        key = f"operators.{self.name}"
        self.reader = GstReader(self.config.pipeline, f"{key}.pipeline", self.config.frame_timeout_s)

    def open_stream(self) -> None:
        self.reader.start()

    def read_frame(self) -> np.ndarray | None:
        return self.reader.read()

    def close_stream(self) -> None:
        self.reader.close()
