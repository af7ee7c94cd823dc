"""A graph plugin for the soak run: samples this process's resident memory every N frames."""

from __future__ import annotations

import os
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


class RSSProbe(SurgsegOperator):
    """Writes [[frame_index, rss_mib], ...] as JSON on stop."""

    Config = RSSProbeConfig
    inputs = ("in",)

    def start(self) -> None:
        self.samples: list[list[float]] = []

    def process(self, inputs: dict[str, Message | None]) -> None:
        index = inputs["in"]["meta"]["frame_index"]
        if index % self.config.every == 0:
            self.samples.append([index, round(rss_mib(), 2)])

    def stop(self) -> None:
        atomic_write_json(self.config.path, self.samples)


SURGSEG_OPERATORS = {"RSSProbe": RSSProbe}
