"""The scope's field of view: found per shape (text in the border, dark tissue inside), steady over time, and the
crop it adds to the letterbox maps model pixels back onto the same frame pixels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import surgseg.operators  # noqa: F401  (preloads libcudart before holoscan)
from holoscan.core import Fragment

from surgseg.engines.config import validate_config
from surgseg.engines.errors import InputError
from surgseg.engines.fov import (FieldOfView, FovTracker, FovTrackerConfig, crop_to_fov, detect_fov,
                                 outside_to_background)
from surgseg.engines.frame_qa import longest_circular_run, rim_cover
from surgseg.engines.letterbox import LetterboxGeometry, letterbox, letterbox_geometry, unletterbox
from surgseg.engines.overlay import FOV_COLOUR, fov_outline
from surgseg.engines.preprocess import mask_to_model
from surgseg.engines.sam2.seeding import to_model
from surgseg.engines.temporal import TemporalConfig, TemporalFilter
from surgseg.operators.overlay import Overlay
from surgseg.operators.preproc import Preproc, PreprocConfig
from surgseg.operators.qa_monitor import QAMonitor, QAMonitorConfig
from surgseg.operators.temporal_ema import TemporalEMA, TemporalEMAConfig

H, W = 288, 384


def tissue(height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """Smooth reddish texture, max channel 70..230."""
    rng = np.random.default_rng(seed)
    noise = cv2.resize(rng.random((height // 16, width // 16)).astype(np.float32), (width, height))
    base = 70 + 160 * noise
    return np.clip(np.stack([base, base * 0.55, base * 0.45], -1), 0, 255).astype(np.uint8)


def scope_frame(fov: FieldOfView, height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """Tissue inside `fov`, a near-black noisy border outside."""
    rng = np.random.default_rng(seed + 1)
    frame = rng.integers(0, 9, (height, width, 3), dtype=np.uint8)
    inside = fov.mask(height, width)
    frame[inside] = tissue(height, width, seed)[inside]
    return frame


def iou(a: FieldOfView, b: FieldOfView, height: int = H, width: int = W) -> float:
    ma, mb = a.mask(height, width), b.mask(height, width)
    return float((ma & mb).sum() / (ma | mb).sum())


def test_a_centred_circle_is_found() -> None:
    truth = FieldOfView.circle(191.5, 143.5, 130, H, W)
    found = detect_fov(scope_frame(truth))
    assert found.kind == "circle"
    assert found.center == pytest.approx(truth.center, abs=1.5) and found.radius == pytest.approx(130, abs=2)
    assert iou(found, truth) > 0.98


def test_a_rounded_rectangle_is_found() -> None:
    truth = FieldOfView.rounded_rect((40, 12, 360, 280), 40)
    found = detect_fov(scope_frame(truth))
    assert found.kind == "rounded_rect"
    assert max(abs(p - q) for p, q in zip(found.bbox, truth.bbox)) <= 2 and iou(found, truth) > 0.98


def test_an_octagon_is_found() -> None:
    truth = FieldOfView.octagon((40, 12, 360, 280), 45)
    found = detect_fov(scope_frame(truth))
    assert found.kind == "octagon" and iou(found, truth) > 0.98


def test_an_offset_circle_cut_by_the_frame_is_found_whole() -> None:
    truth = FieldOfView.circle(230.0, 150.0, 175.0, H, W)  # reaches past the top, bottom and right edges
    assert truth.kind == "clipped_circle"
    found = detect_fov(scope_frame(truth))
    assert found.kind == "clipped_circle"
    assert found.radius == pytest.approx(175, abs=3) and found.center == pytest.approx(truth.center, abs=3)
    assert found.bbox[1] == 0 and found.bbox[3] == H and found.bbox[2] == W


@pytest.mark.parametrize(("cx", "cy", "radius"), [(192.0, 40.0, 230.0), (300.0, 150.0, 200.0)])
def test_an_offset_circle_lighting_two_corners_is_found(cx: float, cy: float, radius: float) -> None:
    truth = FieldOfView.circle(cx, cy, radius, H, W)
    found = detect_fov(scope_frame(truth))
    assert found.kind == "clipped_circle" and iou(found, truth) > 0.98


def test_a_frame_without_border_is_the_full_frame() -> None:
    found = detect_fov(tissue())
    assert found == FieldOfView.full(H, W) and found.mask(H, W).all()


def test_a_full_frame_with_a_dark_corner_stays_full() -> None:
    frame = tissue()
    cv2.circle(frame, (0, 0), 90, (10, 6, 5), -1)
    assert detect_fov(frame).is_full


def test_text_and_a_logo_in_the_border_do_not_move_the_fov() -> None:
    truth = FieldOfView.circle(191.5, 143.5, 125, H, W)
    frame = scope_frame(truth)
    white = (255, 255, 255)
    cv2.putText(frame, "2026-11-29 23:59:59", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, white, 1)
    cv2.putText(frame, "ZOOM x1.5", (300, 280), cv2.FONT_HERSHEY_SIMPLEX, 0.4, white, 1)
    cv2.rectangle(frame, (4, 240), (50, 280), (200, 200, 40), -1)  # a solid logo
    cv2.putText(frame, "CAM 1", (4, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.5, white, 2)
    found = detect_fov(frame)
    assert found.kind == "circle" and iou(found, truth) > 0.97


def test_a_menu_panel_touching_the_fov_does_not_move_the_circle() -> None:
    truth = FieldOfView.circle(191.5, 143.5, 125, H, W)
    frame = scope_frame(truth)
    cv2.rectangle(frame, (0, 100), (70, 190), (128, 128, 128), -1)  # reaches into the FOV at its left edge
    found = detect_fov(frame)
    assert found.kind == "circle" and iou(found, truth) > 0.97


def test_dark_tissue_inside_and_at_the_edge_does_not_shrink_the_fov() -> None:
    truth = FieldOfView.circle(191.5, 143.5, 130, H, W)
    frame = scope_frame(truth)
    cv2.circle(frame, (191, 143), 45, (14, 8, 6), -1)  # dark lumen in the middle
    cv2.ellipse(frame, (90, 100), (60, 40), 30, 0, 360, (16, 9, 8), -1)  # dark fold reaching the FOV's edge
    found = detect_fov(frame)
    assert found.kind == "circle" and iou(found, truth) > 0.97


def test_a_vignette_fading_to_black_is_not_a_border() -> None:
    ys, xs = np.indices((H, W))
    fade = np.clip(2.0 - np.hypot(xs - W / 2, ys - H / 2) / 110, 0, 1)  # black corners, a 110-px slope to them
    assert detect_fov((tissue() * fade[..., None]).astype(np.uint8)).is_full


def test_a_black_frame_is_the_full_frame() -> None:
    assert detect_fov(np.zeros((H, W, 3), np.uint8)).is_full


def test_detection_at_720p_matches_the_geometry() -> None:
    truth = FieldOfView.circle(639.5, 359.5, 340, 720, 1280)
    found = detect_fov(scope_frame(truth, 720, 1280))
    assert found.kind == "circle" and iou(found, truth, 720, 1280) > 0.98


def test_fov_round_trips_through_a_dict() -> None:
    fov = FieldOfView.circle(100.25, 80.5, 60.0, H, W)
    assert FieldOfView.from_dict(fov.to_dict()) == fov


def test_a_bad_fov_dict_is_an_input_error() -> None:
    with pytest.raises(InputError, match="fov"):
        FieldOfView.from_dict({"kind": "hexagon", "bbox": [0, 0, 4, 4]})


def test_crop_to_fov_cuts_frames_and_masks_alike() -> None:
    fov = FieldOfView.rounded_rect((40, 12, 360, 280), 30)
    frame, mask = tissue(), np.zeros((H, W), np.uint8)
    assert crop_to_fov(frame, fov).shape == (268, 320, 3) and crop_to_fov(mask, fov).shape == (268, 320)
    assert np.array_equal(crop_to_fov(frame, fov), frame[12:280, 40:360])


def test_the_tracker_ignores_jitter_and_detects_every_n_frames() -> None:
    truth = FieldOfView.circle(191.5, 143.5, 130, H, W)
    tracker = FovTracker(FovTrackerConfig(every=5))
    fovs = [tracker.update(scope_frame(truth, seed=t % 3)) for t in range(20)]
    assert len(set(fovs)) == 1 and iou(fovs[0], truth) > 0.98
    assert tracker.detections == 4


def test_the_tracker_takes_a_zoom_change_once_it_holds() -> None:
    wide, narrow = FieldOfView.circle(191.5, 143.5, 130, H, W), FieldOfView.circle(191.5, 143.5, 95, H, W)
    tracker = FovTracker(FovTrackerConfig(every=10, hold=3))
    for t in range(10):
        tracker.update(scope_frame(wide, seed=t))
    seen = [tracker.update(scope_frame(narrow, seed=t)) for t in range(14)]
    assert iou(seen[1], wide) > 0.98  # the first changed detection alone does not move it
    assert all(iou(f, narrow) > 0.97 for f in seen[3:])


def test_the_tracker_does_not_follow_a_single_odd_frame() -> None:
    truth = FieldOfView.rounded_rect((40, 12, 360, 280), 40)
    tracker = FovTracker(FovTrackerConfig(every=1, hold=3))
    frames = [scope_frame(truth, seed=t) for t in range(4)] + [tissue()] + [scope_frame(truth, seed=9)] * 3
    fovs = [tracker.update(f) for f in frames]
    assert all(iou(f, truth) > 0.98 for f in fovs)


# ------------------------------------------------------------------------------- the crop inside the letterbox
def blocky_mask(seed: int = 0) -> np.ndarray:
    """Class ids in 4×4 blocks aligned on even pixels (a 2× down- and up-scaling restores it exactly)."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 2, (H // 4, W // 4)), np.ones((4, 4), int)).astype(np.uint8)


def test_a_cropped_letterboxed_mask_comes_back_on_the_same_frame_pixels() -> None:
    fov = FieldOfView.circle(190.0, 140.0, 100.0, H, W)  # bbox (90, 40, 291, 241): 201 px, odd on purpose
    crop = (90, 40, 290, 240)  # 200 × 200 → 100 × 100: scale 1/2 exactly
    mask = blocky_mask()
    boxed, geometry = letterbox(mask, (100, 160), interpolation=cv2.INTER_NEAREST_EXACT, crop=crop)
    assert (geometry.resized_h, geometry.resized_w, geometry.left, geometry.crop) == (100, 100, 30, crop)
    back = outside_to_background(unletterbox(boxed, geometry, cv2.INTER_NEAREST_EXACT), fov)
    inside = fov.mask(H, W) & (np.indices((H, W))[1] < 290) & (np.indices((H, W))[0] < 240)
    assert np.array_equal(back[inside], mask[inside]) and not back[~fov.mask(H, W)].any()


def test_mask_to_model_with_the_frame_geometry_letterboxes_the_crop() -> None:
    mask = blocky_mask(1)
    geometry = letterbox_geometry((H, W), (64, 64), crop=(40, 12, 360, 280))
    want = letterbox(mask[12:280, 40:360], (64, 64), interpolation=cv2.INTER_NEAREST_EXACT)[0]
    assert np.array_equal(mask_to_model(mask, geometry), want)


def test_a_source_click_lands_on_the_cropped_model_pixels() -> None:
    geometry = letterbox_geometry((H, W), (100, 160), crop=(90, 40, 290, 240))
    assert to_model(90, 40, geometry) == (30, 0) and to_model(289, 239, geometry) == (129, 99)


def test_the_temporal_filter_predicts_nothing_outside_the_fov() -> None:
    fov = FieldOfView.circle(190.0, 140.0, 100.0, H, W)
    geometry = letterbox_geometry((H, W), (100, 160), crop=(90, 40, 290, 240))
    logits = np.zeros((2, 100, 160), np.float32)
    logits[1] = 5.0  # foreground everywhere, padding included
    result = TemporalFilter(TemporalConfig(alpha=1.0, fill_holes=False, min_area=0)).update(
        logits, tissue(), geometry, fov)
    inside = fov.mask(H, W) & (np.indices((H, W))[1] < 290) & (np.indices((H, W))[0] < 240)
    assert result.mask[inside].all() and not result.mask[~fov.mask(H, W)].any()


# ------------------------------------------------------------------------------------------------ operators
def test_preproc_crops_to_the_fov_and_reports_it() -> None:
    truth = FieldOfView.circle(191.5, 143.5, 110, H, W)
    op = Preproc(Fragment(), name="preproc",
                 config=validate_config(PreprocConfig, {"size": [64, 64], "fov": {"enabled": True}}, "preproc"))
    message = op.process({"frame": {"frame": scope_frame(truth), "meta": {"frame_index": 0}}})["image"]
    fov, box = FieldOfView.from_dict(message["meta"]["fov"]), message["meta"]["letterbox"]
    assert fov.kind == "circle" and iou(fov, truth) > 0.98
    assert (box["crop_x0"], box["crop_y0"], box["crop_x1"], box["crop_y1"]) == fov.bbox
    assert (box["resized_h"], box["resized_w"]) == (64, 64)  # a square crop fills the square model input


def test_preproc_fov_settings_are_checked_by_key() -> None:
    with pytest.raises(InputError, match=r"preproc\.fov\.every"):
        validate_config(PreprocConfig, {"fov": {"enabled": True, "every": 0}}, "operators.preproc")


def test_temporal_ema_reports_a_mask_on_the_fov_rim_and_overlay_and_qa_flag_it(tmp_path) -> None:
    fov = FieldOfView.circle(191.5, 143.5, 110, H, W)
    geometry = letterbox_geometry((H, W), (64, 64), crop=fov.bbox)
    logits = np.full((1, 2, 64, 64), -5.0, np.float32)
    logits[0, 0] = 5.0
    ring = np.hypot(*(np.indices((64, 64)) - 31.5))
    logits[0, 1][ring > 28] = 10.0  # the model paints the dark rim
    meta = {"frame_index": 0, "letterbox": geometry.to_dict(), "fov": fov.to_dict()}
    ema = TemporalEMA(Fragment(), name="ema", config=TemporalEMAConfig(alpha=1.0))
    out = ema.process({"logits": {"frame": scope_frame(fov), "logits": logits, "meta": meta}})["mask"]
    assert out["meta"]["fov_border"]["arc"] > 0.9 and not out["mask"][~fov.mask(H, W)].any()
    overlay = Overlay(Fragment(), name="overlay").process({"mask": out})["overlay"]["overlay"]
    assert (overlay[fov_outline(fov, H, W)] == FOV_COLOUR).all()
    qa = QAMonitor(Fragment(), name="qa", config=QAMonitorConfig(path=str(tmp_path / "qa.jsonl")))
    qa.start()
    qa.process({"in": out})
    qa.stop()
    assert "fov_border" in json.loads((tmp_path / "qa.jsonl").read_text())["flags"]


def test_an_instrument_entering_across_the_rim_is_not_flagged() -> None:
    fov = FieldOfView.circle(191.5, 143.5, 130, H, W)
    mask = np.zeros((H, W), np.uint8)
    cv2.line(mask, (70, 200), (190, 140), 1, 14)  # a shaft crossing the rim at the lower left
    cover = rim_cover(mask, fov)
    assert 0 < cover.arc < 0.1 and cover.fill < 0.1 and not cover.flagged()


def test_a_mask_filling_the_rim_band_is_flagged() -> None:
    fov = FieldOfView.octagon((40, 12, 360, 280), 45)
    mask = (fov.mask(H, W) & ~FieldOfView.octagon((52, 24, 348, 268), 40).mask(H, W)).astype(np.uint8)
    cover = rim_cover(mask, fov)
    assert cover.arc == pytest.approx(1.0) and cover.fill > 0.5 and cover.flagged()


def test_the_longest_covered_stretch_wraps_around_the_rim() -> None:
    assert longest_circular_run(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)) == 5


def test_the_device_code_crops_like_the_host_code() -> None:
    """The torch branches (run on CUDA in a graph) on CPU tensors: same crop, same pixels."""
    import torch

    from surgseg.engines.preprocess import model_input
    from surgseg.engines.temporal import _NumpyOps, _TorchOps

    frame, mask = tissue(), blocky_mask(2)
    geometry = letterbox_geometry((H, W), (100, 160), crop=(90, 40, 290, 240))
    host, _ = model_input(frame, (100, 160), crop=geometry.crop)
    device, device_geometry = model_input(torch.from_numpy(frame), (100, 160), crop=geometry.crop)
    assert device_geometry == geometry and np.abs(device.numpy() - host).max() < 0.05
    assert np.array_equal(mask_to_model(torch.from_numpy(mask), geometry).numpy(), mask_to_model(mask, geometry))
    logits = np.random.default_rng(3).normal(0, 1, (2, 100, 160)).astype(np.float32)
    on_host = _NumpyOps.to_source_mask(logits, geometry)
    on_device = _TorchOps.to_source_mask(torch.from_numpy(logits), geometry).numpy()
    assert (on_host == on_device).mean() > 0.99 and not on_device[:40].any() and not on_device[:, 290:].any()


def test_a_geometry_without_crop_keys_is_the_whole_source() -> None:
    old = {k: v for k, v in letterbox_geometry((H, W), (64, 64)).to_dict().items() if not k.startswith("crop")}
    geometry = LetterboxGeometry(**old)
    assert geometry.crop == (0, 0, W, H) and not geometry.cropped


def test_a_scene_cut_asks_for_a_detection_at_once() -> None:
    scope = FieldOfView.circle(191.5, 143.5, 110, H, W)
    tracker = FovTracker(FovTrackerConfig(every=100, hold=2, scene_cut=0.3))
    for t in range(5):
        tracker.update(scope_frame(scope, seed=t))
    seen = [tracker.update(tissue(seed=t)) for t in range(3)]  # the scope comes off: no border any more
    assert tracker.detections == 3 and not seen[0].is_full and seen[1].is_full and seen[2].is_full
