"""Temporal filter: EMA on logits, hole filling, small-component removal, scene-cut reset, non-finite guard."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import letterbox_geometry
from surgseg.engines.temporal import (
    TemporalConfig,
    TemporalFilter,
    fill_class_holes,
    histogram_distance,
    remove_small_components,
    scene_signature,
)

GREY = np.full((64, 64, 3), 128, np.uint8)


def binary_logits(foreground: np.ndarray, strength: float = 4.0) -> np.ndarray:
    """(2, h, w) logits: class 1 wins by `strength` where `foreground`, loses elsewhere."""
    fg = np.where(foreground, strength, -strength).astype(np.float32)
    return np.stack([np.zeros_like(fg), fg])


def square(size: int = 64, lo: int = 16, hi: int = 48) -> np.ndarray:
    region = np.zeros((size, size), bool)
    region[lo:hi, lo:hi] = True
    return region


def test_ema_weights_current_frame_by_alpha():
    filt = TemporalFilter(TemporalConfig(alpha=0.7, fill_holes=False, min_area=0))
    filt.update(binary_logits(square(), 4.0), GREY)
    filt.update(binary_logits(~square(), 4.0), GREY)
    assert np.allclose(filt._ema[1, 32, 32], 0.7 * -4.0 + 0.3 * 4.0)


def test_single_frame_flicker_is_suppressed():
    filt = TemporalFilter(TemporalConfig(alpha=0.3, fill_holes=False, min_area=0))
    for _ in range(3):
        filt.update(binary_logits(square()), GREY)
    flicker = filt.update(binary_logits(np.zeros((64, 64), bool)), GREY)
    assert flicker.mask[16:48, 16:48].all()


def test_alpha_one_disables_smoothing():
    filt = TemporalFilter(TemporalConfig(alpha=1.0, fill_holes=False, min_area=0))
    filt.update(binary_logits(square()), GREY)
    result = filt.update(binary_logits(np.zeros((64, 64), bool)), GREY)
    assert result.mask.sum() == 0


def test_holes_inside_a_class_are_filled():
    mask = square().astype(np.uint8)
    mask[30:34, 30:34] = 0
    fill_class_holes(mask, 1)
    assert mask[16:48, 16:48].all()


def test_background_touching_the_border_is_not_a_hole():
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 10:20] = 1
    before = mask.copy()
    fill_class_holes(mask, 1)
    assert np.array_equal(mask, before)


def test_components_under_min_area_are_removed():
    mask = square().astype(np.uint8)
    mask[2:5, 2:5] = 1  # 9 px speck
    remove_small_components(mask, 1, min_area=10)
    assert mask[2:5, 2:5].sum() == 0 and mask[16:48, 16:48].all()


def _whole_frame_fill(mask: np.ndarray, class_id: int) -> np.ndarray:
    """The definition: flood the non-class pixels from a padded border of the whole frame."""
    outside = np.pad((mask != class_id).astype(np.uint8), 1, constant_values=1)
    cv2.floodFill(outside, None, (0, 0), 2)
    mask[(outside[1:-1, 1:-1] == 1) & (mask == 0)] = class_id
    return mask


def _whole_frame_removal(mask: np.ndarray, class_id: int, min_area: int) -> np.ndarray:
    """The definition: OpenCV's component statistics over the whole frame."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((mask == class_id).astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < min_area
    small[0] = False
    mask[small[labels]] = 0
    return mask


def test_cleaning_in_the_class_bounding_box_equals_the_whole_frame_definition():
    rng = np.random.default_rng(7)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = ((rng.random((h, w)) < rng.random()) * rng.integers(1, 3, (h, w))).astype(np.uint8)
        if rng.random() < 0.4:
            mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        for class_id in (1, 2):
            min_area = int(rng.integers(0, 12))
            assert np.array_equal(fill_class_holes(mask.copy(), class_id), _whole_frame_fill(mask.copy(), class_id))
            assert np.array_equal(remove_small_components(mask.copy(), class_id, min_area),
                                  _whole_frame_removal(mask.copy(), class_id, min_area))


def test_scene_cut_resets_the_ema():
    filt = TemporalFilter(TemporalConfig(alpha=0.2, fill_holes=False, min_area=0, scene_cut=0.5))
    for _ in range(3):
        filt.update(binary_logits(square()), GREY)
    dark = np.full((64, 64, 3), 10, np.uint8)
    result = filt.update(binary_logits(np.zeros((64, 64), bool)), dark)
    assert result.scene_cut and result.mask.sum() == 0


def test_same_scene_is_not_a_cut():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    shifted = np.roll(frame, 3, axis=1)
    assert histogram_distance(scene_signature(frame), scene_signature(shifted)) < 0.1


def test_non_finite_logits_hold_the_last_good_mask():
    filt = TemporalFilter(TemporalConfig(fill_holes=False, min_area=0))
    good = filt.update(binary_logits(square()), GREY)
    bad_logits = binary_logits(np.zeros((64, 64), bool))
    bad_logits[1, 0, 0] = np.nan
    bad = filt.update(bad_logits, GREY)
    assert bad.held and np.array_equal(bad.mask, good.mask)
    after = filt.update(binary_logits(square()), GREY)
    assert not after.held and np.isfinite(filt._ema).all()


def test_mask_comes_back_at_source_resolution():
    geometry = letterbox_geometry((90, 160), (64, 64))
    logits = np.zeros((2, 64, 64), np.float32)
    logits[1, geometry.top : geometry.top + geometry.resized_h, :] = 5.0
    logits[1, geometry.top : geometry.top + geometry.resized_h, :32] = -5.0
    result = TemporalFilter(TemporalConfig(min_area=0)).update(logits, np.zeros((90, 160, 3), np.uint8), geometry)
    assert result.mask.shape == (90, 160)
    assert result.mask[:, 90:].all() and not result.mask[:, :70].any()


def test_confidence_is_mean_max_softmax():
    logits = binary_logits(square(), strength=np.log(3.0))  # p = 0.75 everywhere
    result = TemporalFilter().update(logits, GREY)
    assert result.confidence == pytest.approx(0.75, abs=1e-5)


def test_bad_alpha_is_refused():
    with pytest.raises(InputError, match="alpha"):
        TemporalConfig(alpha=0.0)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_labelling_clean_gives_the_same_mask_as_the_cpu_path(num_classes):
    from scipy import ndimage

    from surgseg.engines.temporal import _NumpyOps, clean_by_labels

    rng = np.random.default_rng(num_classes)
    for _ in range(4):
        blobs = cv2_blobs(rng, num_classes)
        expected = _NumpyOps.clean(blobs.copy(), num_classes, fill_holes=True, min_area=20)
        got = clean_by_labels(blobs.copy(), num_classes, True, 20, np, ndimage)
        assert not np.array_equal(expected, blobs)  # something was filled or removed
        np.testing.assert_array_equal(got, expected)


def cv2_blobs(rng: np.random.Generator, num_classes: int, size: int = 96) -> np.ndarray:
    """Class-id mask with rings (holes), specks (small components) and shapes touching the border."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    for _ in range(6):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(mask, centre, int(rng.integers(6, 24)), int(rng.integers(1, num_classes)), int(rng.integers(2, 5)))
    mask[rng.random((size, size)) < 0.01] = rng.integers(1, num_classes)
    return mask


@pytest.mark.cuda
def test_cuda_filter_gives_the_cpu_mask():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pytest.importorskip("cupy")
    rng = np.random.default_rng(5)
    logits = binary_logits(cv2_blobs(rng, 2) > 0) + rng.normal(0, 0.5, (2, 96, 96)).astype(np.float32)
    frame = np.full((96, 96, 3), 100, np.uint8)
    cpu = TemporalFilter().update(logits, frame).mask
    gpu = TemporalFilter().update(torch.from_numpy(logits).cuda(), torch.from_numpy(frame).cuda()).mask
    assert gpu.is_cuda
    np.testing.assert_array_equal(gpu.cpu().numpy(), cpu)


def test_two_class_masks_equal_the_argmax_of_both_unletterboxed_channels_ties_included():
    import cv2

    from surgseg.engines.letterbox import letterbox_geometry, unletterbox
    from surgseg.engines.temporal import _NumpyOps

    geometry = letterbox_geometry((90, 160), (32, 40))
    rng = np.random.default_rng(3)
    base = rng.normal(size=(32, 40)).astype(np.float32)
    margin = rng.normal(size=(32, 40)).astype(np.float32)
    margin[:, :20] = 0.0  # exact ties: argmax picks background
    logits = np.stack([base, base + margin])
    want = unletterbox(np.ascontiguousarray(np.moveaxis(logits, 0, -1)), geometry, cv2.INTER_LINEAR).argmax(-1)
    got = _NumpyOps.to_source_mask(logits, geometry)
    assert got.dtype == np.uint8 and got.shape == (90, 160)
    assert np.array_equal(got, want.astype(np.uint8)) and 0 < int(got.sum()) < got.size
