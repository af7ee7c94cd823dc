"""Per-frame quality signals for monitoring: model confidence from logits, how much the mask moved since t−1, and
how much of the mask hugs the rim of the scope's field of view (a border painted as foreground)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.fov import FieldOfView

RIM_SIDE = 256
"""The rim check runs on the mask subsampled to at most this many pixels on its longer side."""
RIM_WIDTH = 0.03
"""Width of the FOV's rim band, as a share of the FOV's shorter side."""
MAX_RIM_ARC = 0.25
"""Default QA limit: longest stretch of the rim covered by foreground, as a share of the rim."""
MAX_RIM_FILL = 0.25
"""Default QA limit: share of the rim band that is foreground."""


def confidence(logits: np.ndarray) -> float:
    """Mean over pixels of the max softmax probability; logits are (C,h,w) or (1,C,h,w). NaN when not finite."""
    values = np.asarray(logits, dtype=np.float32)
    if values.ndim == 4:
        values = values[0]
    if not np.isfinite(values).all():
        return float("nan")
    shifted = values - values.max(axis=0, keepdims=True)
    return float(np.mean(1.0 / np.exp(shifted).sum(axis=0)))


def mask_change(previous: np.ndarray | None, current: np.ndarray) -> float:
    """1 − IoU of the foreground (class id > 0) of two masks; 0 when both are empty or there is no previous one."""
    if previous is None:
        return 0.0
    if previous.shape != current.shape:
        return 1.0
    before, now = previous > 0, current > 0
    union = int(np.logical_or(before, now).sum())
    if union == 0:
        return 0.0
    return 1.0 - int(np.logical_and(before, now).sum()) / union


@dataclass(frozen=True)
class RimCover:
    """How much foreground lies on the FOV's rim: `arc` = the longest covered stretch of the rim (share of its
    length), `fill` = the share of the rim band that is foreground."""

    arc: float
    fill: float

    def flagged(self, max_arc: float = MAX_RIM_ARC, max_fill: float = MAX_RIM_FILL) -> bool:
        return self.arc > max_arc or self.fill > max_fill

    def to_dict(self) -> dict[str, float]:
        return {"arc": round(self.arc, 4), "fill": round(self.fill, 4)}


def rim_cover(mask: Any, fov: FieldOfView) -> RimCover | None:
    """The foreground of an H×W class-id mask (numpy or device array) on the rim of `fov`; None for the full frame
    (instruments come in across the frame's edges)."""
    if fov.is_full:
        return None
    height, width = int(mask.shape[0]), int(mask.shape[1])
    stride = max(1, math.ceil(max(height, width) / RIM_SIDE))
    band, points, reach = _rim(fov, height, width, stride)
    if not len(points):
        return None
    on_rim = (to_numpy(mask[::stride, ::stride]) > 0) & band
    fill = float(np.count_nonzero(on_rim)) / max(int(np.count_nonzero(band)), 1)
    near = cv2.dilate(on_rim.view(np.uint8), reach) > 0
    hits = near[points[:, 1], points[:, 0]]
    return RimCover(longest_circular_run(hits) / len(hits), fill)


def longest_circular_run(hits: np.ndarray) -> int:
    """Length of the longest run of True in a circular sequence."""
    if hits.all():
        return len(hits)
    if not hits.any():
        return 0
    start = int(np.argmin(hits))  # a False: the rolled sequence's runs do not wrap
    padded = np.concatenate([[0], np.roll(hits, -start).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


@lru_cache(maxsize=4)
def _rim(fov: FieldOfView, height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rim band, ordered points along the band's middle, the kernel that spans the band) on the subsampled grid."""
    inside = np.ascontiguousarray(fov.mask(height, width)[::stride, ::stride]).view(np.uint8)
    x0, y0, x1, y1 = fov.bbox
    side = max(3, 2 * round(RIM_WIDTH * min(x1 - x0, y1 - y0) / stride) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    band = (inside > 0) & (cv2.erode(inside, kernel, borderValue=1) == 0)
    half = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side // 2 | 1, side // 2 | 1))
    middle = cv2.erode(inside, half, borderValue=1)
    contours, _ = cv2.findContours(middle, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = max(contours, key=len).reshape(-1, 2) if contours else np.zeros((0, 2), int)
    rows, cols = band.shape
    on_frame = (points[:, 0] > 0) & (points[:, 1] > 0) & (points[:, 0] < cols - 1) & (points[:, 1] < rows - 1)
    band.flags.writeable = False
    return band, points[on_frame], kernel
