"""Letterbox keeps the aspect ratio, centres the content, and unletterbox restores the source geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import letterbox, letterbox_geometry, unletterbox


def test_geometry_of_a_wide_frame_in_a_square() -> None:
    geom = letterbox_geometry((720, 1280), (512, 512))
    assert (geom.resized_h, geom.resized_w, geom.top, geom.left) == (288, 512, 112, 0)
    assert geom.scale == pytest.approx(0.4)


def test_letterbox_pads_with_the_given_value_and_keeps_dtype_and_channels() -> None:
    prior = np.full((30, 60, 2), 5.0, np.float16)
    out, geom = letterbox(prior, (60, 60), pad_value=-10)
    assert out.shape == (60, 60, 2) and out.dtype == np.float16
    assert np.all(out[: geom.top] == -10) and np.all(out[geom.top : geom.top + 30] == 5)


def test_unletterbox_restores_a_mask_exactly() -> None:
    mask = np.zeros((48, 96), np.uint8)
    mask[10:30, 20:60] = 1
    boxed, geom = letterbox(mask, (96, 96), interpolation=cv2.INTER_NEAREST)
    back = unletterbox(boxed, geom, interpolation=cv2.INTER_NEAREST)
    assert back.shape == mask.shape and np.array_equal(back, mask)


def test_single_channel_stays_channel_last() -> None:
    out, geom = letterbox(np.ones((10, 20, 1), np.float32), (40, 40))
    assert out.shape == (40, 40, 1)
    assert unletterbox(out, geom).shape == (10, 20, 1)


def test_unletterbox_rejects_a_wrong_size() -> None:
    _, geom = letterbox(np.zeros((10, 20), np.uint8), (40, 40))
    with pytest.raises(InputError):
        unletterbox(np.zeros((30, 30), np.uint8), geom)
