"""Operators that exist only for the runtime tests, loaded through a graph's `plugins:` list."""

from __future__ import annotations

from dataclasses import dataclass

from surgseg.engines.atomic import atomic_write_json
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


SURGSEG_OPERATORS = {"FailAt": FailAt, "FeedbackProbe": FeedbackProbe}
