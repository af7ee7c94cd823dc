"""Letterbox: scale an image (or a crop of it) to fit a fixed H×W keeping its aspect ratio, pad the rest (centred),
and undo it.

Used by training (augment) and by the runtime's Preproc, so both see exactly the same geometry. Arrays are H×W or
H×W×C (channels last, any count), uint8 or float; float16 is computed in float32 and returned as float16. A crop
(the scope's field of view, `surgseg.engines.fov`) is part of the geometry: only source[crop] is letterboxed, and
`unletterbox` puts it back at its place in the full source (zeros elsewhere).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from surgseg.engines.errors import InputError


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where the source's crop source[crop_y0:crop_y1, crop_x0:crop_x1] sits in the letterboxed output:
    out[top:top+resized_h, left:left+resized_w]. Without a crop it is the whole source."""

    source_h: int
    source_w: int
    target_h: int
    target_w: int
    scale: float
    resized_h: int
    resized_w: int
    top: int
    left: int
    crop_x0: int = 0
    crop_y0: int = 0
    crop_x1: int = -1
    """Exclusive; -1 (the default) = source_w."""
    crop_y1: int = -1
    """Exclusive; -1 (the default) = source_h."""

    def __post_init__(self) -> None:
        if self.crop_x1 < 0:
            object.__setattr__(self, "crop_x1", self.source_w)
        if self.crop_y1 < 0:
            object.__setattr__(self, "crop_y1", self.source_h)

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the letterboxed part of the source."""
        return self.crop_x0, self.crop_y0, self.crop_x1, self.crop_y1

    @property
    def cropped(self) -> bool:
        return self.crop != (0, 0, self.source_w, self.source_h)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def letterbox_geometry(
    source_size: tuple[int, int], target_size: tuple[int, int], crop: tuple[int, int, int, int] | None = None
) -> LetterboxGeometry:
    """Geometry for a (h, w) source, or its `crop` (x0, y0, x1, y1), placed in a (H, W) target: uniform scale,
    centred, padding split evenly."""
    (sh, sw), (th, tw) = source_size, target_size
    if min(sh, sw, th, tw) <= 0:
        raise InputError(f"letterbox: sizes must be positive, got source {source_size} target {target_size}")
    x0, y0, x1, y1 = (0, 0, sw, sh) if crop is None else (int(v) for v in crop)
    if not (0 <= x0 < x1 <= sw and 0 <= y0 < y1 <= sh):
        raise InputError(f"letterbox: crop {list(crop)} is not inside the source {source_size}")
    h, w = y1 - y0, x1 - x0
    scale = min(th / h, tw / w)
    rh, rw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
    return LetterboxGeometry(sh, sw, th, tw, scale, rh, rw, (th - rh) // 2, (tw - rw) // 2, x0, y0, x1, y1)


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
    crop: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, LetterboxGeometry]:
    """Fit `image` (or its `crop` (x0, y0, x1, y1)) into `size` = (H, W) keeping aspect; return (H×W[×C] array,
    geometry).

    For masks use INTER_NEAREST_EXACT: cv2's INTER_NEAREST samples off-centre and shifts the mask by half a pixel.
    """
    if image.ndim not in (2, 3):
        raise InputError(f"letterbox: expected H×W or H×W×C array, got shape {image.shape}")
    geom = letterbox_geometry(image.shape[:2], size, crop)
    part = image[geom.crop_y0 : geom.crop_y1, geom.crop_x0 : geom.crop_x1]  # a view: cv2 takes row strides
    resized = _resize(part, (geom.resized_h, geom.resized_w), interpolation)
    out = np.full((geom.target_h, geom.target_w, *image.shape[2:]), pad_value, dtype=image.dtype)
    out[geom.top : geom.top + geom.resized_h, geom.left : geom.left + geom.resized_w] = resized
    return out, geom


def unletterbox(array: np.ndarray, geom: LetterboxGeometry, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Crop the padding off a letterboxed H×W[×C] array and resize it back to the source size (a cropped
    geometry: back to the crop's size, placed in a source-size array of zeros)."""
    if array.shape[:2] != (geom.target_h, geom.target_w):
        raise InputError(f"unletterbox: array {array.shape[:2]} is not the letterboxed size "
                         f"{(geom.target_h, geom.target_w)}")
    picture = array[geom.top : geom.top + geom.resized_h, geom.left : geom.left + geom.resized_w]
    x0, y0, x1, y1 = geom.crop
    back = _resize(np.ascontiguousarray(picture), (y1 - y0, x1 - x0), interpolation)
    if not geom.cropped:
        return back
    out = np.zeros((geom.source_h, geom.source_w, *back.shape[2:]), dtype=back.dtype)
    out[y0:y1, x0:x1] = back
    return out
