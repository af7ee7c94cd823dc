"""Per-frame quality signals for monitoring: model confidence from logits and how much the mask moved since t−1."""

from __future__ import annotations

import numpy as np


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
