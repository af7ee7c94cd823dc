"""Dice, IoU, Boundary F and their aggregation against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.metrics import (
    MetricAccumulator,
    boundary_f,
    boundary_map,
    boundary_radius,
    dice,
    frame_scores,
    iou,
)


def square(top: int, left: int, side: int = 10, shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_identical_squares_score_one() -> None:
    a = square(20, 20) > 0
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0 and boundary_f(a, a) == 1.0


def test_one_pixel_shift_of_a_10px_square() -> None:
    a, b = square(20, 20) > 0, square(20, 21) > 0
    assert dice(a, b) == pytest.approx(2 * 90 / 200)
    assert iou(a, b) == pytest.approx(90 / 110)
    assert boundary_f(a, b) == 1.0  # within the 2 px tolerance of a 100×100 image


def test_boundary_radius_is_0008_of_the_diagonal() -> None:
    assert boundary_radius((100, 100)) == 2  # ceil(0.008 × 141.4)
    assert boundary_radius((288, 384)) == 4  # ceil(0.008 × 480)


def test_boundary_f_of_a_far_shift_is_zero() -> None:
    assert boundary_f(square(10, 10) > 0, square(60, 60) > 0) == 0.0


def test_boundary_f_of_a_partial_overlap_by_hand() -> None:
    # A 10×10 square vs the same square extended 10 px to the right (10×20). Boundaries: 36 and 56 pixels.
    a = square(20, 20) > 0
    b = np.zeros((100, 100), bool)
    b[20:30, 20:40] = True
    assert boundary_map(a).sum() == 36 and boundary_map(b).sum() == 56
    # Tolerance 2 px. a's boundary: all but its right column's rows 23..26 lie within 2 px of b's boundary.
    precision = (36 - 4) / 36
    # b's boundary: top and bottom rows up to column 31 (12 each) and its left column's 8 inner pixels are near a's.
    recall = (12 + 12 + 8) / 56
    assert boundary_f(a, b) == pytest.approx(2 * precision * recall / (precision + recall))


def test_empty_masks_score_one_and_one_sided_empty_zero() -> None:
    empty, full = np.zeros((20, 20), bool), square(5, 5, 5, (20, 20)) > 0
    assert dice(empty, empty) == iou(empty, empty) == boundary_f(empty, empty) == 1.0
    assert dice(empty, full) == iou(empty, full) == boundary_f(full, empty) == 0.0


def test_image_border_is_not_a_boundary() -> None:
    full = np.ones((20, 20), bool)
    assert boundary_map(full).sum() == 0


def test_frame_scores_per_class_and_shape_check() -> None:
    gt = square(20, 20)
    pred = square(20, 21)
    scores = frame_scores(pred, gt, num_classes=2)
    assert scores["dice"][1] == pytest.approx(0.9)
    assert scores["dice"][0] == pytest.approx(2 * 9890 / (9900 + 9900))
    with pytest.raises(InputError):
        frame_scores(pred, gt[:50], 2)


def test_accumulator_averages_frames_overall_and_per_sequence() -> None:
    acc = MetricAccumulator(2, ["background", "polyp"])
    gt = square(20, 20)
    acc.update(gt, gt, "a")  # Dice 1.0
    acc.update(square(20, 21), gt, "a")  # Dice 0.9
    acc.update(np.zeros_like(gt), gt, "b")  # Dice 0.0
    summary = acc.summary()
    assert summary["frames"] == 3
    assert summary["mean_dice"] == pytest.approx(1.9 / 3)
    assert summary["sequences"]["a"]["mean_dice"] == pytest.approx(0.95)
    assert summary["sequences"]["b"]["mean_dice"] == 0.0
    assert summary["per_class"]["polyp"]["iou"] == pytest.approx((1 + 90 / 110 + 0) / 3)


def test_accumulator_without_frames_refuses_a_summary() -> None:
    with pytest.raises(InputError):
        MetricAccumulator(2).summary()
