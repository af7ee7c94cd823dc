"""Letterbox: scale an image to fit a fixed H×W keeping its aspect ratio, pad the rest (centred), and undo it.

Used by training (augment) and by the runtime's Preproc, so both see exactly the same geometry. Arrays are H×W or
H×W×C (channels last, any count), uint8 or float; float16 is computed in float32 and returned as float16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from surgseg.engines.errors import InputError


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where the source sits in the letterboxed output: out[top:top+resized_h, left:left+resized_w]."""

    source_h: int
    source_w: int
    target_h: int
    target_w: int
    scale: float
    resized_h: int
    resized_w: int
    top: int
    left: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def letterbox_geometry(source_size: tuple[int, int], target_size: tuple[int, int]) -> LetterboxGeometry:
    """Geometry for a (h, w) source placed in a (H, W) target: uniform scale, centred, padding split evenly."""
    (h, w), (th, tw) = source_size, target_size
    if min(h, w, th, tw) <= 0:
        raise InputError(f"letterbox: sizes must be positive, got source {source_size} target {target_size}")
    scale = min(th / h, tw / w)
    rh, rw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
    return LetterboxGeometry(h, w, th, tw, scale, rh, rw, (th - rh) // 2, (tw - rw) // 2)


def _resize(array: np.ndarray, size_hw: tuple[int, int], interpolation: int) -> np.ndarray:
    if array.shape[:2] == tuple(size_hw):
        return array
    work = array.astype(np.float32) if array.dtype in (np.float16, np.float64) else array
    if work.dtype == bool:
        work = work.astype(np.uint8)
    out = cv2.resize(work, (size_hw[1], size_hw[0]), interpolation=interpolation)
    if out.ndim < array.ndim:  # cv2 drops a trailing channel axis of length 1
        out = out[..., None]
    return out.astype(array.dtype, copy=False)


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    pad_value: float = 0,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, LetterboxGeometry]:
    """Fit `image` into `size` = (H, W) keeping aspect; return (H×W[×C] array, geometry).

    For masks use INTER_NEAREST_EXACT: cv2's INTER_NEAREST samples off-centre and shifts the mask by half a pixel.
    """
    if image.ndim not in (2, 3):
        raise InputError(f"letterbox: expected H×W or H×W×C array, got shape {image.shape}")
    geom = letterbox_geometry(image.shape[:2], size)
    resized = _resize(image, (geom.resized_h, geom.resized_w), interpolation)
    out = np.full((geom.target_h, geom.target_w, *image.shape[2:]), pad_value, dtype=image.dtype)
    out[geom.top : geom.top + geom.resized_h, geom.left : geom.left + geom.resized_w] = resized
    return out, geom


def unletterbox(array: np.ndarray, geom: LetterboxGeometry, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Crop the padding off a letterboxed H×W[×C] array and resize it back to the source size."""
    if array.shape[:2] != (geom.target_h, geom.target_w):
        raise InputError(f"unletterbox: array {array.shape[:2]} is not the letterboxed size "
                         f"{(geom.target_h, geom.target_w)}")
    crop = array[geom.top : geom.top + geom.resized_h, geom.left : geom.left + geom.resized_w]
    return _resize(np.ascontiguousarray(crop), (geom.source_h, geom.source_w), interpolation)
