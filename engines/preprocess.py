"""Model inputs from frames and masks: letterbox to the model size, ImageNet normalisation, masks as prior logits.

The geometry is `surgseg.engines.letterbox`'s (the same one training uses), optionally of a crop of the frame (the
scope's field of view); numpy + OpenCV on the CPU, torch on CUDA (bilinear for images, nearest for masks, no host
copy).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from surgseg.engines.array_backend import array_kind
from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import LetterboxGeometry, letterbox, letterbox_geometry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_LOGIT = -10.0
"""Prior value outside the letterboxed picture: confidently background (as in training)."""


def model_input(
    frame: Any,
    size: tuple[int, int],
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    crop: tuple[int, int, int, int] | None = None,
) -> tuple[Any, LetterboxGeometry]:
    """H×W×3 uint8 RGB (or its `crop` (x0, y0, x1, y1)) → (1, 3, h, w) float32 normalised image at `size` = (h, w),
    and the letterbox geometry."""
    if array_kind(frame) == "numpy":
        boxed, geometry = letterbox(frame, size, crop=crop)
        x = (boxed.astype(np.float32) * np.float32(1 / 255) - np.float32(mean)) / np.float32(std)
        return np.ascontiguousarray(x.transpose(2, 0, 1))[None], geometry
    import torch

    geometry = letterbox_geometry(tuple(frame.shape[:2]), size, crop)
    chw = _torch_resize(_torch_crop(frame, geometry).permute(2, 0, 1).float(), geometry, "bilinear")
    m = torch.tensor(mean, device=frame.device).view(3, 1, 1) * 255
    s = torch.tensor(std, device=frame.device).view(3, 1, 1) * 255
    out = (-m / s).expand(3, *size).clone()  # padding: black pixels, normalised
    g = geometry
    out[:, g.top : g.top + g.resized_h, g.left : g.left + g.resized_w] = (chw - m) / s
    return out[None], geometry


def mask_to_model(mask: Any, target: tuple[int, int] | LetterboxGeometry) -> Any:
    """H×W class ids → letterboxed h×w class ids (nearest neighbour, padding = background). `target` is the model
    size (h, w), or the frame's geometry (`meta["letterbox"]`), which also carries the field-of-view crop."""
    if isinstance(target, LetterboxGeometry):
        if tuple(mask.shape[:2]) != (target.source_h, target.source_w):
            raise InputError(f"mask: shape {tuple(mask.shape[:2])} is not the frame's "
                             f"{(target.source_h, target.source_w)}")
        size, crop = (target.target_h, target.target_w), target.crop
    else:
        size, crop = tuple(target), None
    if array_kind(mask) == "numpy":
        return letterbox(mask, size, interpolation=cv2.INTER_NEAREST_EXACT, crop=crop)[0]
    import torch

    geometry = letterbox_geometry(tuple(mask.shape[:2]), size, crop)
    small = _torch_resize(_torch_crop(mask, geometry)[None].float(), geometry, "nearest-exact")[0]
    out = torch.zeros(size, dtype=mask.dtype, device=mask.device)
    g = geometry
    out[g.top : g.top + g.resized_h, g.left : g.left + g.resized_w] = small.to(mask.dtype)
    return out


def mask_prior(mask: Any, num_classes: int, logit: float, outside: float | None = None) -> Any:
    """A model-size class-id mask as prior logits (1, C−1, h, w): +logit inside class k, `outside` elsewhere
    (default −logit; 0 = "no opinion", which lets a class the mask missed appear)."""
    low = -logit if outside is None else outside
    if array_kind(mask) == "numpy":
        ids = np.arange(1, num_classes, dtype=mask.dtype).reshape(-1, 1, 1)
        return np.where(mask[None] == ids, np.float32(logit), np.float32(low))[None]
    import torch

    ids = torch.arange(1, num_classes, device=mask.device, dtype=mask.dtype).view(-1, 1, 1)
    return torch.where(mask[None] == ids, logit, low).float()[None]


def empty_prior(num_classes: int, size: tuple[int, int], like: Any) -> Any:
    """All-zero prior logits (1, C−1, h, w): 'no prior', what training's prior dropout shows the refiner."""
    if array_kind(like) == "numpy":
        return np.zeros((1, num_classes - 1, *size), np.float32)
    import torch

    return torch.zeros((1, num_classes - 1, *size), dtype=torch.float32, device=like.device)


def _torch_crop(array: Any, geometry: LetterboxGeometry) -> Any:
    x0, y0, x1, y1 = geometry.crop
    return array[y0:y1, x0:x1]


def _torch_resize(chw: Any, geometry: LetterboxGeometry, mode: str) -> Any:
    import torch.nn.functional as F

    size = (geometry.resized_h, geometry.resized_w)
    if tuple(chw.shape[1:]) == size:
        return chw
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(chw[None], size=size, mode=mode, **kwargs)[0]
