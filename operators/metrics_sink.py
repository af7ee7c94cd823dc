"""Dice, IoU and Boundary F of each frame's `mask` against its `gt_mask` (when the source has one) → JSON on stop.

Scores are averaged over frames, overall, per `meta['sequence']` and per synthetic event tag (`tags`, with
`clean` for untagged frames); `per_frame` lists each frame's foreground means (the report's timeline).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.metrics import MetricAccumulator
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)


@dataclass
class MetricsSinkConfig:
    path: str
    num_classes: int = 2
    classes: list[str] | None = None


class MetricsSink(SurgsegOperator):
    Config = MetricsSinkConfig
    inputs = ("in",)

    def start(self) -> None:
        c = self.config
        self.overall = MetricAccumulator(c.num_classes, list(c.classes) if c.classes else None)
        self.by_tag = MetricAccumulator(c.num_classes, list(c.classes) if c.classes else None)
        self.without_gt = 0
        self.per_frame: list[dict[str, Any]] = []

    def process(self, inputs: dict[str, Message | None]) -> None:
        message = inputs["in"]
        gt = message.get("gt_mask")
        if gt is None:
            self.without_gt += 1
            return
        pred, gt = to_numpy(message["mask"]), to_numpy(gt)
        scores = self.overall.update(pred, gt, sequence=str(message["meta"].get("sequence", "all")))
        self.per_frame.append({"frame_index": message["meta"].get("frame_index"),
                               **{name: round(float(np.mean(values[1:])), 6) for name, values in scores.items()}})
        if message.get("tags") is not None:
            for tag in list(message["tags"]) or ["clean"]:
                self.by_tag.update(pred, gt, sequence=tag)

    def report(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"frames_scored": self.overall.frames, "frames_without_gt": self.without_gt}
        if self.overall.frames:
            payload.update(self.overall.summary())
        if self.by_tag.frames:
            payload["tags"] = self.by_tag.summary()["sequences"]
        payload["per_frame"] = self.per_frame
        return payload

    def stop(self) -> None:
        payload = self.report()
        atomic_write_json(self.config.path, payload)
        log.info("%s: %d frames scored (mean Dice %s) → %s", self.name, payload["frames_scored"],
                 f"{payload['mean_dice']:.4f}" if "mean_dice" in payload else "n/a", self.config.path)
