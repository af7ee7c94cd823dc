"""Counts the frames that reach the end of the graph and writes what it saw as JSON when the graph stops."""

from __future__ import annotations

import time
from dataclasses import dataclass

from surgseg.engines.atomic import atomic_write_json
from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class FrameCounterConfig:
    path: str | None = None
    """JSON written on stop: frame count, frame indices seen, dropped frames, latency and arrival times."""


class FrameCounterSink(SurgsegOperator):
    Config = FrameCounterConfig
    inputs = ("in",)

    def start(self) -> None:
        self.frame_indices: list[int] = []
        self.latencies_ms: list[float] = []
        self.arrivals_ms: list[float] = []
        self.dropped = 0

    def process(self, inputs: dict[str, Message | None]) -> None:
        meta = inputs["in"]["meta"]
        self.frame_indices.append(meta["frame_index"])
        now = time.perf_counter_ns()
        self.latencies_ms.append((now - meta["captured_ns"]) / 1e6)
        self.arrivals_ms.append(now / 1e6)
        self.dropped = meta.get("dropped_total", 0)

    def stop(self) -> None:
        if self.config.path:
            atomic_write_json(self.config.path, {"frames": len(self.frame_indices), "frame_indices": self.frame_indices,
                                                 "dropped": self.dropped, "latency_ms": self.latencies_ms,
                                                 "arrival_ms": self.arrivals_ms})
