"""Motion compensation of a stale prior: the warped prior follows the scene; identical frames change nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.motion import PriorWarper, to_grey
from surgseg.engines.preprocess import model_input

H, W = 128, 160
SHIFT = (7, -9)  # the scene moves by (dy, dx) pixels between the two frames


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A large textured RGB canvas with a bright textured disk, and the disk's mask."""
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.random((H + 40, W + 40)).astype(np.float32), (0, 0), 3.0)
    grey = (texture - texture.mean()) / texture.std() * 40 + 110
    yy, xx = np.indices(grey.shape)
    disk = (yy - 80) ** 2 + (xx - 95) ** 2 <= 24**2
    grey[disk] += 60
    image = np.dstack([grey, grey * 0.8, grey * 0.6]).clip(0, 255).astype(np.uint8)
    return image, disk


def frame(canvas: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The H×W view of the canvas whose content has moved by (dy, dx)."""
    return np.ascontiguousarray(canvas[20 - dy : 20 - dy + H, 20 - dx : 20 - dx + W])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def two_frames() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    image, disk = scene()
    return frame(image, 0, 0), frame(image, *SHIFT), frame(disk, 0, 0), frame(disk, *SHIFT)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_warped_prior_lands_where_the_object_moved(method: str) -> None:
    before, after, mask_before, mask_after = two_frames()
    prior = np.where(mask_before, 8.0, -8.0).astype(np.float32)[None]
    warped = PriorWarper(method).warp(prior, before, after)
    assert iou(prior[0] > 0, mask_after) < 0.6  # the stale prior is off
    assert iou(warped[0] > 0, mask_after) > 0.9


def test_prior_at_another_resolution_is_warped_on_its_own_grid() -> None:
    before, after, mask_before, mask_after = two_frames()
    big = cv2.resize(mask_before.astype(np.uint8), (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST)
    prior = np.where(big > 0, 8.0, -8.0).astype(np.float32)[None]
    warped = PriorWarper().warp(prior, before, after)
    truth = cv2.resize(mask_after.astype(np.uint8), (2 * W, 2 * H), interpolation=cv2.INTER_NEAREST) > 0
    assert warped.shape == (1, 2 * H, 2 * W)
    assert iou(warped[0] > 0, truth) > 0.9


def test_normalised_model_input_gives_the_same_flow_as_rgb() -> None:
    before, after, _, _ = two_frames()
    warper = PriorWarper()
    rgb_flow = warper.flow(before, after)
    model_flow = warper.flow(model_input(before, (H, W))[0], model_input(after, (H, W))[0])
    assert np.abs(to_grey(model_input(before, (H, W))[0]).astype(int) - to_grey(before)).max() <= 1
    assert np.median(np.abs(rgb_flow - model_flow)) < 0.1


def test_identical_images_return_the_prior_unchanged() -> None:
    before, _, mask_before, _ = two_frames()
    prior = np.where(mask_before, 5.0, -5.0).astype(np.float32)[None]
    assert np.array_equal(PriorWarper().warp(prior, before, before.copy()), prior)


def test_bad_shapes_and_dtypes_are_input_errors() -> None:
    before, after, _, _ = two_frames()
    warper = PriorWarper()
    with pytest.raises(InputError, match="prior"):
        warper.warp(np.zeros((H, W), np.float32), before, after)
    with pytest.raises(InputError, match="prior"):
        warper.warp(np.zeros((1, H, W), np.int32), before, after)
    with pytest.raises(InputError, match="image"):
        warper.warp(np.zeros((1, H, W), np.float32), before[..., 0], after[..., 0])
    with pytest.raises(InputError, match="differ"):
        warper.warp(np.zeros((1, H, W), np.float32), before, after[:64])
    with pytest.raises(InputError, match="method"):
        PriorWarper("lucas-kanade")


def test_flow_on_large_images_is_computed_small_and_still_moves_the_prior():
    from surgseg.engines.motion import PriorWarper

    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280)).astype(np.uint8), (0, 0), 6)
    before = np.dstack([texture] * 3)
    after = np.roll(before, 40, axis=1)  # everything moved 40 px right
    prior = np.full((1, 180, 320), -8.0, np.float32)
    prior[0, 60:120, 100:160] = 8.0  # an object at columns 400-640 of the 1280 frame
    warper = PriorWarper(max_side=256)
    assert warper.flow(before, after).shape == (144, 256, 2)
    warped = warper.warp(prior, before, after)[0] > 0
    cols = np.flatnonzero(warped[90])
    assert abs(cols.min() - 110) <= 2 and abs(cols.max() - 169) <= 2  # 40 px of 1280 = 10 px of 320
