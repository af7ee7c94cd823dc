"""Mask standardisation: any user mask (binary 0/255, colour, palette, already-ID, JPEG-noisy) to HxW uint8 class ids.

Noise rule: a pixel off every valid level is snapped to the nearest level when it is close to it (JPEG noise in flat
areas), lies near a boundary between two snapped classes (JPEG ringing) or is isolated; a far-off region (a 3x3
block or more) inside one class is an error naming the file and the values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from surgseg.engines.errors import InputError, one_line
from surgseg.engines.video.image_folder import load_picture

BINARY_LEVELS = (0, 255)
BOUNDARY_PX = 4
NOISE_PER_CHANNEL = 40
MAX_LISTED_VALUES = 6


@dataclass(frozen=True)
class ColourMap:
    """RGB colour -> class id, with class names; loaded from a YAML file."""

    colours: np.ndarray  # (K, 3) uint8
    ids: np.ndarray  # (K,) uint8
    names: dict[int, str]


@dataclass(frozen=True)
class StandardMask:
    mask: np.ndarray  # HxW uint8 class ids
    kind: str  # "ids" | "binary" | "colour" | "palette"
    changed_pixels: int  # pixels snapped from a noisy value to a valid one


def load_colour_map(path: str | os.PathLike) -> ColourMap:
    """Read `classes: [{id: 1, name: shaft, colour: [255, 0, 0]}, ...]` (background must be listed too)."""
    try:
        payload = yaml.safe_load(Path(path).read_text())
        entries = payload["classes"]
        colours = np.array([entry["colour"] for entry in entries], np.int64)
        ids = np.array([int(entry["id"]) for entry in entries], np.int64)
        names = {int(entry["id"]): str(entry.get("name", f"class_{entry['id']}")) for entry in entries}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a colour map (classes: [{{id, name, colour: [r, g, b]}}]): {one_line(exc)}") from None
    if colours.ndim != 2 or colours.shape[1] != 3 or colours.min() < 0 or colours.max() > 255:
        raise InputError(f"{path}: every colour must be [r, g, b] in 0..255")
    if ids.min() < 0 or ids.max() > 255 or len(set(map(tuple, colours.tolist()))) != len(colours):
        raise InputError(f"{path}: ids must be 0..255 and colours unique")
    return ColourMap(colours.astype(np.uint8), ids.astype(np.uint8), names)


def read_mask(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """Raw mask pixels and whether they are palette indices (PIL keeps them; cv2 would expand the palette)."""
    image = load_picture(path, "unreadable mask")
    mode = image.mode
    if mode == "P":
        return np.asarray(image), True
    if mode in ("1", "L", "LA", "I;16", "I"):
        array = np.asarray(image.convert("L") if mode in ("1", "LA") else image)
        if mode == "1":
            array = array.astype(np.uint8)
        return array, False
    return np.asarray(image.convert("RGB")), False


def standardise_mask(
    raw: np.ndarray,
    source: str,
    num_classes: int,
    colour_map: ColourMap | None = None,
    palette: bool = False,
) -> StandardMask:
    """Class-id mask from raw pixels; `source` names the file in errors."""
    if raw.ndim == 3 and raw.shape[2] >= 3:
        rgb = raw[..., :3]
        grey = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        if colour_map is None and grey:
            raw = rgb[..., 0]
        else:
            return _from_colour(rgb, source, num_classes, colour_map)
    if raw.ndim != 2:
        raise InputError(f"{source}: mask has shape {raw.shape}; expected HxW or HxWx3")
    if int(raw.max()) < num_classes:
        return StandardMask(raw.astype(np.uint8), "palette" if palette else "ids", 0)
    if raw.dtype == np.uint8 and _looks_binary(raw, num_classes):
        if not np.any((raw != 0) & (raw != 255)):
            return StandardMask((raw == 255).astype(np.uint8), "binary", 0)
        snapped, changed = _snap(raw[..., None], np.array([[0], [255]]), source)
        return StandardMask(snapped, "binary", changed)
    values = np.unique(raw)
    outside = values[values >= num_classes]
    raise InputError(
        f"{source}: values outside the class ids 0..{num_classes - 1}: {_listing(outside.tolist())}"
    )


def _from_colour(rgb: np.ndarray, source: str, num_classes: int, colour_map: ColourMap | None) -> StandardMask:
    if colour_map is None:
        raise InputError(f"{source}: RGB colour mask needs a colour map (--colour-map classes.yaml)")
    if int(colour_map.ids.max()) >= num_classes:
        raise InputError(f"{source}: colour map has class id {int(colour_map.ids.max())} >= num_classes {num_classes}")
    index, changed = _snap(rgb, colour_map.colours, source)
    return StandardMask(colour_map.ids[index], "colour", changed)


def _snap(pixels: np.ndarray, levels: np.ndarray, source: str) -> tuple[np.ndarray, int]:
    """Index of the nearest level per pixel (HxWxC uint8 vs KxC), computed once per distinct pixel value, after
    checking that far-off pixels are only noise (near a boundary or isolated)."""
    channels = pixels.shape[-1]
    codes = np.zeros(pixels.shape[:2], np.int32)
    for c in range(channels):
        codes = (codes << 8) | pixels[..., c].astype(np.int32)
    values = np.unique(codes)
    inverse = np.searchsorted(values, codes)
    colours = (values[:, None] >> (8 * np.arange(channels - 1, -1, -1))) & 255
    distances = np.abs(colours[:, None, :] - levels[None, :, :].astype(np.int32)).sum(axis=-1)
    index = distances.argmin(axis=1).astype(np.uint8)[inverse]
    nearest = distances.min(axis=1)
    off = nearest[inverse] > 0
    far = (nearest > NOISE_PER_CHANNEL * channels)[inverse]
    if far.any():
        stray = far & ~_near_boundary(index)
        if _has_region(stray):
            found = colours[np.unique(inverse[stray])].tolist()
            shown = [tuple(v) if channels > 1 else v[0] for v in found]
            raise InputError(f"{source}: {int(stray.sum())} pixels with values outside the map: {_listing(shown)}")
    return index, int(off.sum())


def _has_region(pixels: np.ndarray) -> bool:
    """Whether a 3x3 block of pixels is set (isolated JPEG outliers are not)."""
    import cv2

    return bool(cv2.erode(pixels.astype(np.uint8), np.ones((3, 3), np.uint8)).any())


def _near_boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels within BOUNDARY_PX of a change of label."""
    import cv2

    kernel = np.ones((2 * BOUNDARY_PX + 1, 2 * BOUNDARY_PX + 1), np.uint8)
    return cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)


def _looks_binary(raw: np.ndarray, num_classes: int) -> bool:
    """Exactly 0/255; or, for a two-class task, any mask with near-white pixels (JPEG-noisy 0/255)."""
    if num_classes == 2:
        return bool(np.any(raw >= 255 - NOISE_PER_CHANNEL))
    return bool(np.isin(raw, BINARY_LEVELS).all())


def _listing(values: list) -> str:
    head = ", ".join(str(v) for v in values[:MAX_LISTED_VALUES])
    return head + (f" (+{len(values) - MAX_LISTED_VALUES} more)" if len(values) > MAX_LISTED_VALUES else "")
