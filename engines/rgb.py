"""Bring any 8-bit picture array (grey, grey+1, RGB, RGBA) to the project's frame format: HxWx3 uint8 RGB."""

from __future__ import annotations

import numpy as np

from surgseg.engines.errors import InputError


def as_rgb(array: np.ndarray, where: str) -> np.ndarray:
    """HxWx3 uint8 RGB from HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped) uint8; InputError naming `where` otherwise."""
    if array.dtype != np.uint8:
        raise InputError(f"{where}: expected 8-bit pixels, got {array.dtype} (convert the source to 8-bit RGB)")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    raise InputError(f"{where}: expected a grey, RGB or RGBA picture, got an array of shape {array.shape}")
