"""Per-frame confidence and mask stability to a JSONL log (one line per frame, flushed at once).

Besides the flags a line carries, when SAM2Prior ran upstream, the classes SAM 2 tracked on that frame and any seed,
re-seed or release, plus the per-operator milliseconds: enough to reconstruct a run's seeding history afterwards.

Flags: `low_confidence` (mean max softmax of `logits` under `min_confidence`), `large_change` (1 − IoU of the
foreground against frame t−1 over `max_change`), `non_finite` (NaN/Inf logits) and `bad_output` (an upstream
operator set `meta['bad_output']`, e.g. it held the last good mask) and `fov_border` (the mask covers a long arc of
the field of view's rim, or much of its rim band: `meta['fov_border']` from TemporalEMA over `max_border_arc` or
`max_border_fill`; a scope's dark border painted as foreground).
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
from surgseg.engines.frame_qa import MAX_RIM_ARC, MAX_RIM_FILL, RimCover, confidence, mask_change
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class QAMonitorConfig:
    path: str
    min_confidence: float = 0.7
    max_change: float = 0.5
    only_flagged: bool = False
    """Write only the frames with a flag (default: every frame, flagged or not)."""
    max_border_arc: float = MAX_RIM_ARC
    """Longest stretch of the FOV's rim the mask may cover (share of the rim) before `fov_border`."""
    max_border_fill: float = MAX_RIM_FILL
    """Share of the FOV's rim band the mask may fill before `fov_border`."""


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
        rim = message["meta"].get("fov_border")
        if rim is not None and RimCover(**rim).flagged(self.config.max_border_arc, self.config.max_border_fill):
            flags.append("fov_border")
        return {"confidence": None if score is None or math.isnan(score) else round(score, 4),
                "change": None if change is None else round(change, 4), "flags": flags,
                **({} if rim is None else {"fov_border": rim})}

    def stop(self) -> None:
        self._log.close()
        log.info("%s: %d frames, flagged %s → %s", self.name, self.frames, self.flag_counts or "none",
                 self.config.path)


def seeding_record(meta: dict[str, Any]) -> dict[str, Any]:
    """SAM 2's tracked classes, this frame's seed/re-seed/release events (non-empty ones), prior age, the source's
    dropped-frame count and timings."""
    record: dict[str, Any] = {}
    sam2 = meta.get("sam2")
    if sam2 is not None:
        record["tracked"] = sorted(int(c) for c in sam2.get("memory", {}))
        record.update({key: sam2[key] for key in ("seeded", "reseeded", "released", "instances")
                       if sam2.get(key)})
    if meta.get("prior_age") is not None:
        record["prior_age"] = meta["prior_age"]
    if meta.get("dropped_total") is not None:
        record["dropped_total"] = meta["dropped_total"]
    if meta.get("timings_ms"):
        record["timings_ms"] = {name: round(ms, 3) for name, ms in meta["timings_ms"].items()}
    return record
