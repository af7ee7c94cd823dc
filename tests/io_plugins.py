"""Operators that exist only for the source/sink tests, loaded through a graph's `plugins: [io_plugins]`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from surgseg.operators.base import Message, NoConfig, SurgsegOperator
from surgseg.operators.holoviz_sink import HolovizSink, HolovizSinkConfig
from surgseg.operators.v4l2_source import V4L2Source, V4L2SourceConfig


class Collector(SurgsegOperator):
    """Keeps every message it receives (tests read `app.ops[name].messages` after the run)."""

    Config = NoConfig
    inputs = ("in",)

    def start(self) -> None:
        self.messages: list[Message] = []
        self.arrived_ns: list[int] = []

    def process(self, inputs: dict[str, Message | None]) -> None:
        self.arrived_ns.append(time.perf_counter_ns())
        self.messages.append(inputs["in"])


@dataclass
class FakeSegmenterConfig:
    confident_until: int = 1000
    """Frames from this index on get flat (low-confidence) logits."""
    jump_at: int = -1
    """At this frame the mask jumps to the other half of the picture."""
    bad_at: int = -1
    """This frame is marked `meta['bad_output']`."""


class FakeSegmenter(SurgsegOperator):
    """Stands in for the model: `mask` = `gt_mask` (or left half), `logits` agreeing with it, `overlay` = frame."""

    Config = FakeSegmenterConfig
    inputs = ("in",)
    outputs = ("out",)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["in"]
        index = message["meta"]["frame_index"]
        height, width = message["frame"].shape[:2]
        mask = message.get("gt_mask")
        if mask is None:
            mask = np.zeros((height, width), np.uint8)
            mask[:, : width // 2] = 1
        if index == self.config.jump_at:
            mask = 1 - mask
        strength = 4.0 if index < self.config.confident_until else 0.0
        logits = np.stack([np.where(mask == 0, strength, 0.0), np.where(mask == 1, strength, 0.0)])[None]
        if index == self.config.bad_at:
            message["meta"]["bad_output"] = True
        message.update(mask=mask.astype(np.uint8), logits=logits.astype(np.float32), overlay=message["frame"])
        return {"out": message}


class FakeDevice:
    """A capture device that delivers `frames` BGR frames at `fps`, then disappears (every read fails)."""

    def __init__(self, frames: int, size: tuple[int, int], fps: float, gone: bool) -> None:
        self.remaining, self.size, self.period, self.gone = frames, size, 1.0 / fps, gone

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return not self.gone

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.period)
        if self.gone or self.remaining <= 0:
            self.gone = True
            return False, None
        self.remaining -= 1
        frame = np.zeros((*self.size, 3), np.uint8)
        frame[:, :, 0] = 200  # blue in OpenCV's BGR order
        return True, frame

    def release(self) -> None:
        pass


@dataclass
class FlakyCaptureConfig(V4L2SourceConfig):
    frames_before_loss: int = 10
    fps: float | None = 100.0


class FlakyCapture(V4L2Source):
    """A V4L2Source whose device is unplugged after `frames_before_loss` frames."""

    Config = FlakyCaptureConfig

    def device_present(self) -> bool:
        return True

    def open_device(self) -> FakeDevice:
        self.opens = getattr(self, "opens", 0) + 1
        return FakeDevice(self.config.frames_before_loss, (48, 64), self.config.fps or 100.0, gone=self.opens > 1)


@dataclass
class RecordedDisplayConfig(HolovizSinkConfig):
    directory: str = "."
    basename: str = "display"


class RecordedDisplay(HolovizSink):
    """HolovizSink with a Holoscan recorder in place of the window: what the display would have shown, on disk."""

    Config = RecordedDisplayConfig
    display_port = "input"

    def make_display(self):
        from holoscan.operators import VideoStreamRecorderOp

        return VideoStreamRecorderOp(self, name="recorder", directory=self.config.directory,
                                     basename=self.config.basename)


SURGSEG_OPERATORS = {"Collector": Collector, "FakeSegmenter": FakeSegmenter, "FlakyCapture": FlakyCapture,
                     "RecordedDisplay": RecordedDisplay}
