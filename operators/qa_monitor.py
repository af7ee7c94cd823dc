"""Per-frame confidence and mask stability to a JSONL log (one line per frame, flushed at once).

Besides the flags a line carries, when SAM2Prior ran upstream, the classes SAM 2 tracked on that frame and any seed,
re-seed or release, plus the per-operator milliseconds: enough to reconstruct a run's seeding history afterwards.

Flags: `low_confidence` (mean max softmax of `logits` under `min_confidence`), `large_change` (1 − IoU of the
foreground against frame t−1 over `max_change`), `non_finite` (NaN/Inf logits) and `bad_output` (an upstream
operator set `meta['bad_output']`, e.g. it held the last good mask).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.frame_qa import confidence, mask_change
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class QAMonitorConfig:
    path: str
    min_confidence: float = 0.7
    max_change: float = 0.5
    only_flagged: bool = False
    """Write only the frames with a flag (default: every frame, flagged or not)."""


class QAMonitor(SurgsegOperator):
    Config = QAMonitorConfig
    inputs = ("in",)

    def start(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = open(self.config.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        self._previous: np.ndarray | None = None
        self.frames = 0
        self.flag_counts: dict[str, int] = {}

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        meta = message["meta"]
        record = self.assess(message)
        self.frames += 1
        for flag in record["flags"]:
            self.flag_counts[flag] = self.flag_counts.get(flag, 0) + 1
        if record["flags"] or not self.config.only_flagged:
            if message.get("tags") is not None:
                record["tags"] = list(message["tags"])
            record.update(seeding_record(meta))
            record = {"frame_index": meta.get("frame_index"), **record}
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()

    def assess(self, message: Message) -> dict[str, Any]:
        """{confidence, change, flags} of one message; remembers its mask for the next frame."""
        flags = []
        score = None
        if message.get("logits") is not None:
            score = confidence(to_numpy(message["logits"]))
            if math.isnan(score):
                flags.append("non_finite")
            elif score < self.config.min_confidence:
                flags.append("low_confidence")
        change = None
        if message.get("mask") is not None:
            mask = to_numpy(message["mask"])
            change = mask_change(self._previous, mask)
            if change > self.config.max_change:
                flags.append("large_change")
            self._previous = mask.copy()
        if message["meta"].get("bad_output"):
            flags.append("bad_output")
        return {"confidence": None if score is None or math.isnan(score) else round(score, 4),
                "change": None if change is None else round(change, 4), "flags": flags}

    def stop(self) -> None:
        self._log.close()
        log.info("%s: %d frames, flagged %s → %s", self.name, self.frames, self.flag_counts or "none",
                 self.config.path)


def seeding_record(meta: dict[str, Any]) -> dict[str, Any]:
    """SAM 2's tracked classes and this frame's seed/re-seed/release events (non-empty ones) and timings."""
    record: dict[str, Any] = {}
    sam2 = meta.get("sam2")
    if sam2 is not None:
        record["tracked"] = sorted(int(c) for c in sam2.get("memory", {}))
        record.update({key: sam2[key] for key in ("seeded", "reseeded", "released") if sam2.get(key)})
    if meta.get("prior_age") is not None:
        record["prior_age"] = meta["prior_age"]
    if meta.get("timings_ms"):
        record["timings_ms"] = {name: round(ms, 3) for name, ms in meta["timings_ms"].items()}
    return record
