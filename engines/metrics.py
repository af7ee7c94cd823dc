"""Segmentation quality on H×W uint8 class-id masks: Dice, IoU and DAVIS Boundary F, per class and mean.

Conventions (per frame and class k):
- Dice = 2|P∩G| / (|P|+|G|), IoU = |P∩G| / |P∪G|; when P and G are both empty the score is 1.0, when only one is
  empty it is 0.0.
- Boundary F (DAVIS, Perazzi et al. 2016): the boundary of a region is its pixels with a 4-neighbour outside it (the
  image border does not count as a boundary); a predicted boundary pixel is correct when a ground-truth boundary
  pixel lies within a disk of radius ceil(0.008 × image diagonal), and vice versa for recall; F = 2PR / (P+R). Both
  boundaries empty → 1.0, only one empty → 0.0.
- "mean" averages the foreground classes 1..C-1 (background is reported per class but left out of the mean, so that
  a binary task's mean is its foreground score).
- Aggregation (`MetricAccumulator`): per-frame scores averaged over the frames of a sequence and over all frames.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np

from surgseg.engines.errors import InputError

BOUNDARY_TOLERANCE = 0.008
METRICS = ("dice", "iou", "boundary_f")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape or pred.ndim != 2:
        raise InputError(f"metrics: prediction {pred.shape} and ground truth {gt.shape} must be equal H×W masks")


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = int(np.logical_or(pred, gt).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(pred, gt).sum()) / union


def boundary_map(region: np.ndarray) -> np.ndarray:
    """Pixels of a boolean region with a 4-neighbour outside it (image border replicated, so not a boundary)."""
    region = region.astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    eroded = cv2.erode(region, cross, borderType=cv2.BORDER_REPLICATE)
    return (region > 0) & (eroded == 0)


def boundary_radius(shape: tuple[int, int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Matching radius in pixels: ceil(tolerance × diagonal), at least 1."""
    return max(1, math.ceil(tolerance * math.hypot(shape[0], shape[1])))


def _dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(boundary.astype(np.uint8), disk) > 0


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """DAVIS boundary F-measure of two boolean masks (1.0 when both boundaries are empty)."""
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    radius = boundary_radius(pred.shape, tolerance)
    precision = int((pred_b & _dilate(gt_b, radius)).sum()) / n_pred
    recall = int((gt_b & _dilate(pred_b, radius)).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def frame_scores(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """Per-class scores of one frame: {"dice"|"iou"|"boundary_f": float64 array of length num_classes}."""
    _check_pair(pred, gt)
    scores = {name: np.zeros(num_classes) for name in METRICS}
    for k in range(num_classes):
        p, g = pred == k, gt == k
        scores["dice"][k] = dice(p, g)
        scores["iou"][k] = iou(p, g)
        scores["boundary_f"][k] = boundary_f(p, g)
    return scores


def summarise(per_class: dict[str, np.ndarray], classes: list[str]) -> dict[str, object]:
    """{"mean_dice", "mean_iou", "mean_boundary_f" (over foreground classes), "per_class": {name: {metric: v}}}."""
    out: dict[str, object] = {f"mean_{name}": float(np.mean(per_class[name][1:])) for name in METRICS}
    out["per_class"] = {cls: {name: float(per_class[name][k]) for name in METRICS} for k, cls in enumerate(classes)}
    return out


@dataclass
class MetricAccumulator:
    """Streams frames in, gives per-sequence and overall frame-averaged scores."""

    num_classes: int
    classes: list[str] | None = None
    _sums: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _counts: dict[str, int] = field(default_factory=lambda: defaultdict(int), repr=False)

    def __post_init__(self) -> None:
        if self.classes is None:
            self.classes = ["background"] + [f"class_{k}" for k in range(1, self.num_classes)]
        if len(self.classes) != self.num_classes:
            raise InputError(f"metrics: {len(self.classes)} class names for num_classes={self.num_classes}")

    def update(self, pred: np.ndarray, gt: np.ndarray, sequence: str = "all") -> dict[str, np.ndarray]:
        """Score one frame, add it to its sequence, and return its per-class scores."""
        scores = frame_scores(pred, gt, self.num_classes)
        sums = self._sums.setdefault(sequence, {name: np.zeros(self.num_classes) for name in METRICS})
        for name in METRICS:
            sums[name] += scores[name]
        self._counts[sequence] += 1
        return scores

    @property
    def frames(self) -> int:
        return sum(self._counts.values())

    def _per_class(self, sequences: list[str]) -> dict[str, np.ndarray]:
        count = sum(self._counts[s] for s in sequences)
        return {name: sum(self._sums[s][name] for s in sequences) / max(count, 1) for name in METRICS}

    def summary(self) -> dict[str, object]:
        """Overall scores (every frame weighs the same), frame count, and the same per sequence."""
        if not self.frames:
            raise InputError("metrics: no frames were scored")
        overall = summarise(self._per_class(list(self._sums)), self.classes)
        overall["frames"] = self.frames
        overall["sequences"] = {
            seq: {**summarise(self._per_class([seq]), self.classes), "frames": self._counts[seq]}
            for seq in sorted(self._sums)
        }
        return overall
