"""Operators that exist only for the runtime tests, loaded through a graph's `plugins:` list."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.errors import InputError
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class FailAtConfig:
    frame: int = 3


class FailAt(SurgsegOperator):
    """Raises ValueError when frame `frame` arrives."""

    Config = FailAtConfig
    inputs = ("in",)
    outputs = ("out",)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        if inputs["in"]["meta"]["frame_index"] == self.config.frame:
            raise ValueError(f"boom at frame {self.config.frame}")
        return {"out": inputs["in"]}


@dataclass
class FeedbackProbeConfig:
    path: str


class FeedbackProbe(SurgsegOperator):
    """Records, per frame, the frame index of the message that came back on its feedback input."""

    Config = FeedbackProbeConfig
    inputs = ("in", "feedback")
    outputs = ("out",)
    feedback_inputs = ("feedback",)

    def start(self) -> None:
        self.seen: list[list[int | None]] = []

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        back = inputs["feedback"]
        self.seen.append([inputs["in"]["meta"]["frame_index"], None if back is None else back["meta"]["frame_index"]])
        return {"out": inputs["in"]}

    def stop(self) -> None:
        atomic_write_json(self.config.path, self.seen)


@dataclass
class FailToStartConfig:
    bad_input: bool = False


class FailToStart(SurgsegOperator):
    """Its constructor raises: InputError when `bad_input`, else a RuntimeError (a bug, out of memory)."""

    Config = FailToStartConfig
    inputs = ("in",)
    outputs = ("out",)

    def __init__(self, *args: Any, config: FailToStartConfig, **kwargs: Any) -> None:
        if config.bad_input:
            raise InputError("operators.relay.bad_input: refused")
        raise RuntimeError("CUDA out of memory (simulated)")


@dataclass
class MarkAfterConfig:
    path: str
    frames: int = 3


class MarkAfter(SurgsegOperator):
    """Forwards every message and creates the file `path` once `frames` frames have passed: tests poll for it."""

    Config = MarkAfterConfig
    inputs = ("in",)
    outputs = ("out",)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        if inputs["in"]["meta"]["frame_index"] + 1 == self.config.frames:
            Path(self.config.path).touch()
        return {"out": inputs["in"]}


@dataclass
class MetaWriterConfig:
    path: str
    pause_ms: float = 2.0


class MetaWriter(SurgsegOperator):
    """Writes its name into `meta['writer']`, waits, reads it back and records every frame where it changed."""

    Config = MetaWriterConfig
    inputs = ("in",)
    outputs = ("out",)

    def start(self) -> None:
        self.frames = 0
        self.overwritten: list[int] = []

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        meta = inputs["in"]["meta"]
        meta["writer"] = self.name
        time.sleep(self.config.pause_ms / 1000)
        if meta["writer"] != self.name:
            self.overwritten.append(meta["frame_index"])
        self.frames += 1
        return {"out": inputs["in"]}

    def stop(self) -> None:
        atomic_write_json(self.config.path, {"frames": self.frames, "overwritten": self.overwritten})

SURGSEG_OPERATORS = {"FailAt": FailAt, "FeedbackProbe": FeedbackProbe, "FailToStart": FailToStart,
                     "MarkAfter": MarkAfter, "MetaWriter": MetaWriter}
