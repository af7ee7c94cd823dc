"""A small two-object clip for SAM 2 tests: a textured background, a moving disc (class 1), a sliding box (class 2)."""

from __future__ import annotations

import cv2
import numpy as np


def two_object_clip(count: int, size: tuple[int, int] = (96, 128), seed: int = 0,
                    speed: tuple[int, int] = (3, 2)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`count` H×W×3 uint8 frames and their class-id masks; the disc moves `speed[0]` px right and the box
    `speed[1]` px down per frame."""
    h, w = size
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(40, 200, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    frames, masks = [], []
    for t in range(count):
        mask = np.zeros((h, w), np.uint8)
        cv2.circle(mask, (w // 4 + speed[0] * t, h // 2), h // 8, 1, -1)
        top = h // 6 + speed[1] * t
        cv2.rectangle(mask, (w * 2 // 3, top), (w * 2 // 3 + w // 5, top + h // 3 - h // 6), 2, -1)
        frame = background.copy()
        frame[mask == 1] = (200, 60, 60)
        frame[mask == 2] = (60, 200, 90)
        frames.append(frame)
        masks.append(mask)
    return frames, masks
