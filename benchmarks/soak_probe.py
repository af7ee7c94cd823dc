"""A graph plugin for the soak run: this process's resident memory every N frames and CPU time every frame.

CPU time per frame (all threads of this process) is what a frame costs regardless of other jobs on the machine;
wall-clock latency on a shared CPU also measures the neighbours.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from surgseg.engines.atomic import atomic_write_json
from surgseg.operators.base import Message, SurgsegOperator

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


@dataclass
class RSSProbeConfig:
    path: str
    every: int = 50
    cpu_path: str = ""


class RSSProbe(SurgsegOperator):
    """Writes [[frame_index, rss_mib], ...] to `path` and per-frame process CPU milliseconds to `cpu_path` on stop."""

    Config = RSSProbeConfig
    inputs = ("in",)

    def start(self) -> None:
        self.samples: list[list[float]] = []
        self.cpu_ms: list[float] = []
        self.last_cpu_s = time.process_time()

    def process(self, inputs: dict[str, Message | None]) -> None:
        index = inputs["in"]["meta"]["frame_index"]
        now = time.process_time()
        self.cpu_ms.append(round((now - self.last_cpu_s) * 1000, 3))
        self.last_cpu_s = now
        if index % self.config.every == 0:
            self.samples.append([index, round(rss_mib(), 2)])

    def stop(self) -> None:
        atomic_write_json(self.config.path, self.samples)
        if self.config.cpu_path:
            atomic_write_json(self.config.cpu_path, self.cpu_ms)


SURGSEG_OPERATORS = {"RSSProbe": RSSProbe}
