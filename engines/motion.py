"""Motion compensation of a stale prior: dense optical flow from the current frame back to the frame the prior was
made on (OpenCV DIS or Farneback, at the images' resolution), then a backward remap of the prior logits.

A prior made on frame t−k is a (C, h, w) float32 logit map; with flow f from the current grey image to the prior's
(current(x) ≈ prior_image(x + f(x))), the warped prior is prior(x + f(x)). The prior may have another resolution than
the images (SAM 2's size vs the refiner's): the flow is resized and rescaled to the prior's grid. Images are H×W×3
uint8 RGB or the model input (1, 3, h, w) / (3, h, w) ImageNet-normalised float32; both become grey uint8.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD

FLOW_METHODS = ("dis", "farneback")
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
LUMA = (0.299, 0.587, 0.114)
FLOW_MAX_SIDE = 256
"""Flow is computed on images shrunk to this long side: at a 736×1280 model size DIS took tens of ms on the fast
path (H200 run, benchmarks/results/gpu_check.json); at 128×160 nothing changes."""


def to_grey(image: Any, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> np.ndarray:
    """h×w grey uint8 from H×W×3 uint8 RGB or a (1, 3, h, w) / (3, h, w) normalised float model input."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.dtype.kind == "f" and image.shape[:-2] in ((3,), (1, 3)):
        planes = image.reshape(3, *image.shape[-2:])
        # grey = Σ_c luma_c · 255 · (x_c · std_c + mean_c): one weighted sum of the planes plus a constant
        weights = [255.0 * lu * s for lu, s in zip(LUMA, std)]
        offset = 255.0 * sum(lu * m for lu, m in zip(LUMA, mean))
        grey = planes[0] * np.float32(weights[0])
        grey += planes[1] * np.float32(weights[1])
        grey += planes[2] * np.float32(weights[2])
        grey += np.float32(offset)
        return np.clip(grey, 0, 255, out=grey).astype(np.uint8)
    raise InputError(f"motion: image must be H×W×3 uint8 RGB or a (1, 3, h, w) float model input, got "
                     f"{image.dtype} {image.shape}")


class PriorWarper:
    """Warps a stale prior into the current frame with dense optical flow (`method`: dis | farneback). DIS's
    `preset` defaults to medium: the only one that follows 16-30 px moves at 128×160 (ultrafast and fast have too few
    pyramid levels there), at ≈ 1.3 ms vs 0.15-0.4 ms (benchmarks/stale_prior.py times them)."""

    def __init__(self, method: str = "dis", preset: str = "medium", max_side: int = FLOW_MAX_SIDE) -> None:
        if method not in FLOW_METHODS:
            raise InputError(f"motion.method: {method!r} (use one of {', '.join(FLOW_METHODS)})")
        if preset not in DIS_PRESETS:
            raise InputError(f"motion.preset: {preset!r} (use one of {', '.join(DIS_PRESETS)})")
        if max_side < 16:
            raise InputError(f"motion.max_side: {max_side} < 16")
        self.method = method
        self.max_side = max_side
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset]) if method == "dis" else None
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def flow(self, prior_image: Any, current_image: Any) -> np.ndarray:
        """(h, w, 2) float32 flow (dx, dy) from the current image to the prior's, in pixels of the images shrunk to
        at most `max_side` on their long side (`remap` rescales it to the prior's grid)."""
        previous, current = to_grey(prior_image), to_grey(current_image)
        if previous.shape != current.shape:
            raise InputError(f"motion: images differ in size ({previous.shape} vs {current.shape})")
        scale = self.max_side / max(current.shape)
        if scale < 1:
            size = (max(1, round(current.shape[1] * scale)), max(1, round(current.shape[0] * scale)))
            previous = cv2.resize(previous, size, interpolation=cv2.INTER_AREA)
            current = cv2.resize(current, size, interpolation=cv2.INTER_AREA)
        if self._dis is not None:
            return self._dis.calc(current, previous, None)
        return cv2.calcOpticalFlowFarneback(current, previous, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    def warp(self, prior: np.ndarray, prior_image: Any, current_image: Any) -> np.ndarray:
        """The prior (C, h, w) float32 logits made on `prior_image`, moved to where things are in `current_image`;
        the same prior (no flow computed) when both images are the same frame."""
        prior = check_prior(prior)
        if prior_image is current_image or _same_pixels(prior_image, current_image):
            return prior
        return self.remap(prior, self.flow(prior_image, current_image))

    def remap(self, prior: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """Backward warp of (C, h, w) logits by a flow of any resolution (resized and rescaled to the prior's)."""
        prior = check_prior(prior)
        h, w = prior.shape[1:]
        fh, fw = flow.shape[:2]
        if (fh, fw) != (h, w):
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
            flow *= np.float32([w / fw, h / fh])
        gx, gy = self._grid(h, w)
        map_x, map_y = flow[..., 0] + gx, flow[..., 1] + gy
        out = np.empty_like(prior)
        for c in range(prior.shape[0]):
            cv2.remap(prior[c], map_x, map_y, cv2.INTER_LINEAR, dst=out[c], borderMode=cv2.BORDER_REPLICATE)
        return out

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        if (h, w) not in self._grids:
            gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
            self._grids[(h, w)] = (gx, gy)
        return self._grids[(h, w)]


def check_prior(prior: Any) -> np.ndarray:
    """(C, h, w) float32 contiguous logits, or InputError."""
    prior = np.asarray(prior)
    if prior.ndim != 3 or prior.dtype.kind != "f" or min(prior.shape) < 1:
        raise InputError(f"motion: prior must be (C, h, w) float logits, got {prior.dtype} {prior.shape}")
    return np.ascontiguousarray(prior, dtype=np.float32)


def _same_pixels(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
