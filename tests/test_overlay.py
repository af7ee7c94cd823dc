"""Overlay drawing: class colours blended inside the mask only, contours on class borders, HUD text, fps meter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.fov import FieldOfView
from surgseg.engines.overlay import (
    CONTOUR_COLOUR,
    FOV_COLOUR,
    OverlayConfig,
    RateMeter,
    class_colours,
    draw_overlay,
    fov_outline,
    render_hud,
)

FRAME = np.full((64, 80, 3), 100, np.uint8)


def two_class_mask() -> np.ndarray:
    mask = np.zeros((64, 80), np.uint8)
    mask[10:30, 10:30] = 1
    mask[35:55, 40:70] = 2
    return mask


def test_background_pixels_are_unchanged():
    out = draw_overlay(FRAME, two_class_mask(), OverlayConfig(contours=False, hud=False))
    assert np.array_equal(out[0:8, 0:80], FRAME[0:8, 0:80])


def test_class_pixels_take_their_colour_at_the_opacity():
    out = draw_overlay(FRAME, two_class_mask(), OverlayConfig(opacity=0.5, contours=False, hud=False))
    colours = class_colours(3).astype(np.float32)
    expected = (100 * 0.5 + colours[2] * 0.5).astype(np.uint8)
    assert np.array_equal(out[45, 55], expected)
    assert not np.array_equal(out[20, 20], out[45, 55])


def test_contours_mark_class_borders_only():
    out = draw_overlay(FRAME, two_class_mask(), OverlayConfig(opacity=0.0, hud=False))
    assert tuple(out[10, 20]) == (255, 255, 255)  # top edge of class 1
    assert np.array_equal(out[20, 20], FRAME[20, 20])  # interior
    assert np.array_equal(out[0, 0], FRAME[0, 0])  # far background


def test_input_frame_is_not_modified():
    frame = FRAME.copy()
    draw_overlay(frame, two_class_mask(), hud_lines=["hello"])
    assert np.array_equal(frame, FRAME)


def test_hud_is_drawn_in_the_top_left_corner():
    out = draw_overlay(FRAME, np.zeros((64, 80), np.uint8), hud_lines=["30.0 fps"])
    patch = render_hud(["30.0 fps"], 64)
    assert (out[: patch.shape[0], :3] == 24).all()
    assert out[: patch.shape[0], : patch.shape[1]].max() > 200  # white text


def test_colours_cycle_past_the_palette():
    colours = class_colours(20)
    assert colours.shape == (20, 3) and tuple(colours[0]) == (0, 0, 0)
    assert (colours[1:].sum(axis=1) > 0).all()


def test_rate_meter_measures_frames_per_second():
    meter = RateMeter(window=10)
    rates = [meter.tick(i * 0.04) for i in range(10)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(25.0)


def test_mask_of_another_size_is_refused():
    with pytest.raises(InputError, match="does not match"):
        draw_overlay(FRAME, np.zeros((10, 10), np.uint8))


def _whole_frame_overlay(frame: np.ndarray, mask: np.ndarray, opacity: float, fov: FieldOfView | None) -> np.ndarray:
    """The definition: blend, contour and outline computed over every pixel of the frame."""
    out, inside = frame.copy(), mask > 0
    colours = class_colours(max(2, int(mask.max()) + 1)).astype(np.float32)
    out[inside] = (frame[inside].astype(np.float32) * (1 - opacity) + colours[mask[inside]] * opacity).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    out[cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)] = CONTOUR_COLOUR
    if fov is not None:
        out[fov_outline(fov, *mask.shape)] = FOV_COLOUR
    return out


def test_overlay_drawn_in_the_mask_window_equals_the_whole_frame_definition():
    rng = np.random.default_rng(3)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(9, 60, 2))
        frame = rng.integers(0, 256, (h, w, 3), np.uint8)
        mask = ((rng.random((h, w)) < rng.random() * 0.3) * rng.integers(1, 4, (h, w))).astype(np.uint8)
        if rng.random() < 0.5:
            mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        fov = FieldOfView.circle(w / 2, h / 2, min(h, w) / 2.2, h, w) if rng.random() < 0.5 else None
        opacity = float(rng.random())
        drawn = draw_overlay(frame, mask, OverlayConfig(opacity=opacity, hud=False), None, fov)
        assert np.array_equal(drawn, _whole_frame_overlay(frame, mask, opacity, fov))
