"""Operators for the fan-out test: two branches write the same `meta` key at once under a multi-thread scheduler."""

from __future__ import annotations

import time
from dataclasses import dataclass

from surgseg.engines.atomic import atomic_write_json
from surgseg.operators.base import Message, SurgsegOperator


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

SURGSEG_OPERATORS = {"MetaWriter": MetaWriter}
