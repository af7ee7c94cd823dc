"""`DebugSnapshot`: every `every` frames, the message's arrays and SAM 2 memory state to `<folder>/frame_N.npz`
(+ `index.jsonl`). Off unless placed in a graph: connect it after TemporalEMA (`[ema, snapshots]`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from surgseg.engines.errors import InputError
from surgseg.engines.snapshots import write_snapshot
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class DebugSnapshotConfig:
    folder: str = "out/snapshots"
    every: int = 100

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InputError(f"every: must be >= 1, got {self.every}")


class DebugSnapshot(SurgsegOperator):
    Config = DebugSnapshotConfig
    inputs = ("in",)

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        if message["meta"].get("frame_index", 0) % self.config.every == 0:
            write_snapshot(Path(self.config.folder), message)
