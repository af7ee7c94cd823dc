"""Draw instance tracks over an overlay frame: one colour per track ID (the same ID, the same colour in every frame),
its outline, and an `#id` tag (in the ID's colour) in the middle of each instrument.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from surgseg.engines.array_backend import array_kind, to_numpy

LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
GOLDEN = 0.6180339887


def id_colour(track_id: int) -> tuple[int, int, int]:
    """A saturated RGB colour for a track ID: hues a golden-ratio step apart, so neighbouring IDs differ."""
    r, g, b = colorsys.hsv_to_rgb((track_id * GOLDEN) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_instances(image, ids: np.ndarray, opacity: float = 0.45):
    """`image` (HxWx3 uint8 RGB, numpy or torch) with each track's pixels tinted in its colour, outlined and
    labelled; same array kind as given (drawn on the host)."""
    kind = array_kind(image)
    out = np.array(to_numpy(image), np.uint8, copy=True)
    ids = np.asarray(ids)
    scale = max(0.45, min(out.shape[:2]) / 400)
    thickness = max(1, round(scale * 1.6))
    for track_id in np.unique(ids[ids > 0]).tolist():
        region = ids == track_id
        colour = np.array(id_colour(track_id), np.float32)
        out[region] = (out[region] * (1 - opacity) + colour * opacity).astype(np.uint8)
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, id_colour(track_id), 2)
        label = f"#{track_id}"
        (w, h), base = cv2.getTextSize(label, LABEL_FONT, scale, thickness)
        ys, xs = np.nonzero(region)
        x = int(np.clip(np.median(xs) - w / 2, 0, max(out.shape[1] - w - 4, 0)))
        y = int(np.clip(np.median(ys) + h / 2, h + 4, out.shape[0] - base - 2))
        cv2.rectangle(out, (x - 2, y - h - 3), (x + w + 2, y + base), id_colour(track_id), -1)
        cv2.putText(out, label, (x, y), LABEL_FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    if kind == "numpy":
        return out
    if kind == "cupy":
        import cupy

        return cupy.asarray(out)
    import torch

    return torch.from_numpy(out).to(image.device)
