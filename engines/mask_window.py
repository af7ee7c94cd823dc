"""The bounding window of a mask's foreground: per-frame mask work (cleaning, blending, contours) touches only it.

An instrument usually covers a small part of a 720p frame, so working in its bounding box instead of the whole frame
turns milliseconds into fractions of one (the whole-frame result is the same: outside the box there is nothing)."""

from __future__ import annotations

import cv2
import numpy as np

Window = tuple[slice, slice]


def foreground_window(mask: np.ndarray, pad: int = 0) -> Window | None:
    """(rows, columns) slices of the bounding box of the mask's non-zero pixels grown by `pad` and clipped to the
    mask; None when there are none. `mask` is H×W uint8 or bool."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8) if mask.dtype == bool else mask)
    if w == 0:
        return None
    height, width = mask.shape[:2]
    return (slice(max(0, y - pad), min(height, y + h + pad)), slice(max(0, x - pad), min(width, x + w + pad)))
