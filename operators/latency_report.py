"""Per-operator and end-to-end latency percentiles, frames processed and dropped → JSON on stop.

End-to-end latency is the time from capture (`meta['captured_ns']`, perf_counter clock, stamped when the source
has the frame) to this operator; per-operator times come from `meta['timings_ms']`. Frames dropped by a live
source's bounded queue come from `meta['dropped_total']`, so decoded = processed + dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from surgseg.engines.atomic import atomic_write_json
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)

PERCENTILES = (50, 95, 99)


def latency_stats(values_ms: list[float]) -> dict[str, float]:
    """{p50, p95, p99, max, mean} in milliseconds (empty dict for no values)."""
    if not values_ms:
        return {}
    array = np.asarray(values_ms, dtype=np.float64)
    stats = {f"p{p}": float(np.percentile(array, p)) for p in PERCENTILES}
    stats.update(max=float(array.max()), mean=float(array.mean()))
    return {key: round(value, 3) for key, value in stats.items()}


@dataclass
class LatencyReportConfig:
    path: str
    warmup: int = 0
    """First frames left out of the statistics (model warm-up)."""


class LatencyReport(SurgsegOperator):
    Config = LatencyReportConfig
    inputs = ("in",)

    def start(self) -> None:
        self.processed = 0
        self.dropped = 0
        self.end_to_end_ms: list[float] = []
        self.per_operator_ms: dict[str, list[float]] = {}
        self.prior_age: dict[str, list[float]] = {"frames": [], "ms": []}
        self._first_ns: int | None = None
        self._last_ns: int | None = None

    def process(self, inputs: dict[str, Message | None]) -> None:
        now = time.perf_counter_ns()
        meta = inputs["in"]["meta"]
        self._first_ns = self._first_ns or now
        self._last_ns = now
        self.processed += 1
        self.dropped = max(self.dropped, int(meta.get("dropped_total", 0)))
        if self.processed <= self.config.warmup:
            return
        self.end_to_end_ms.append((now - meta["captured_ns"]) / 1e6)
        for name, ms in meta.get("timings_ms", {}).items():
            self.per_operator_ms.setdefault(name, []).append(float(ms))
        for unit, value in meta.get("prior_age", {}).items():  # asynchronous SAM 2: how old the prior was
            if value is not None:
                self.prior_age[unit].append(float(value))

    def report(self) -> dict[str, Any]:
        elapsed_s = (self._last_ns - self._first_ns) / 1e9 if self.processed > 1 else 0.0
        return {
            "frames_processed": self.processed,
            "frames_dropped": self.dropped,
            "frames_decoded": self.processed + self.dropped,
            "warmup_frames": min(self.config.warmup, self.processed),
            "throughput_fps": round((self.processed - 1) / elapsed_s, 3) if elapsed_s > 0 else None,
            "end_to_end_ms": latency_stats(self.end_to_end_ms),
            "end_to_end_samples_ms": [round(value, 3) for value in self.end_to_end_ms],
            "per_operator_ms": {name: latency_stats(values) for name, values in self.per_operator_ms.items()},
            "prior_age_frames": latency_stats(self.prior_age["frames"]),
            "prior_age_ms": latency_stats(self.prior_age["ms"]),
        }

    def stop(self) -> None:
        payload = self.report()
        atomic_write_json(self.config.path, payload)
        log.info("%s: %d frames, %d dropped, end-to-end p50 %s ms → %s", self.name, self.processed, self.dropped,
                 payload["end_to_end_ms"].get("p50", "n/a"), self.config.path)
