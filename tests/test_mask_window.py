"""The bounding window of a mask's foreground."""

from __future__ import annotations

import numpy as np

from surgseg.engines.mask_window import foreground_window


def test_window_is_the_bounding_box_of_the_non_zero_pixels():
    mask = np.zeros((20, 30), np.uint8)
    mask[4, 7] = 2
    mask[9, 12] = 1
    assert foreground_window(mask) == (slice(4, 10), slice(7, 13))


def test_padding_grows_the_window_and_stops_at_the_edges():
    mask = np.zeros((20, 30), bool)
    mask[0, 28] = True
    assert foreground_window(mask, pad=2) == (slice(0, 3), slice(26, 30))


def test_an_empty_mask_has_no_window():
    assert foreground_window(np.zeros((5, 5), np.uint8)) is None
