"""The compute operators (Preproc, SAM2Prior, Refiner, TemporalEMA, Overlay) and the prior tracker's seeding policy."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from sam2_double import FakeStreamingSAM2
from test_export import export_tiny_refiner

import surgseg.operators  # noqa: F401  (preloads libcudart before holoscan)
from holoscan.core import Fragment

from surgseg.engines.errors import InputError
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, mask_prior, model_input
from surgseg.engines.sam2.config import MemoryConfig, ModelConfig, SAM2Config, SeedingConfig
from surgseg.engines.sam2.tracker import PriorTracker, SeedRequest
from surgseg.engines.sam2.prompts import prompts_from_mask
from surgseg.operators.overlay import Overlay
from surgseg.operators.preproc import Preproc, PreprocConfig
from surgseg.operators.refiner import Refiner, RefinerOpConfig
from surgseg.operators.sam2_prior import SAM2Prior, SAM2PriorConfig, SeedConfig
from surgseg.operators.temporal_ema import TemporalEMA

MODEL = (64, 64)
FRAME_HW = (48, 80)


def frame_message(index: int = 0, gt: np.ndarray | None = None) -> dict:
    rng = np.random.default_rng(index)
    message = {"frame": rng.integers(0, 255, (*FRAME_HW, 3), dtype=np.uint8),
               "meta": {"frame_index": index, "captured_ns": 0}}
    if gt is not None:
        message["gt_mask"] = gt
    return message


def box_mask(hw: tuple[int, int] = FRAME_HW) -> np.ndarray:
    mask = np.zeros(hw, np.uint8)
    mask[hw[0] // 4 : hw[0] * 3 // 4, hw[1] // 4 : hw[1] // 2] = 1
    return mask


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return export_tiny_refiner(tmp_path_factory.mktemp("refiner"), num_classes=2, size=MODEL).folder


def preprocessed(index: int = 0, gt: np.ndarray | None = None) -> dict:
    op = Preproc(Fragment(), name="preproc", config=PreprocConfig(size=MODEL))
    return op.process({"frame": frame_message(index, gt)})["image"]


# ------------------------------------------------------------------------------------------------ Preproc
def test_preproc_letterboxes_and_normalises():
    message = preprocessed()
    image, box = message["image"], message["meta"]["letterbox"]
    assert image.shape == (1, 3, *MODEL) and image.dtype == np.float32
    assert (box["resized_h"], box["resized_w"], box["top"]) == (38, 64, 13)
    black = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(image[0, :, 0, 0], black, atol=1e-5)  # padding row


def test_model_input_matches_manual_normalisation():
    frame = np.full((64, 64, 3), 255, np.uint8)
    image, _ = model_input(frame, (64, 64))
    assert np.allclose(image[0, :, 10, 10], (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), atol=1e-5)


# ------------------------------------------------------------------------------------------------ Refiner
def test_refiner_outputs_logits_for_image_and_prior(artifact):
    op = Refiner(Fragment(), name="refiner", config=RefinerOpConfig(artifact=str(artifact), size=MODEL),
                 connected_inputs=frozenset({"image"}))
    message = {**preprocessed(), "prior": np.zeros((1, 1, *MODEL), np.float32)}
    logits = op.process({"image": message, "feedback": None})["logits"]["logits"]
    assert logits.shape == (1, 2, *MODEL) and np.isfinite(logits).all()


@pytest.mark.parametrize(("change", "error"), [({"num_classes": 3}, "num_classes 2"), ({"size": (128, 128)}, "input_size")])
def test_refiner_refuses_an_artefact_that_does_not_fit_the_graph(artifact, change, error):
    config = RefinerOpConfig(artifact=str(artifact), **{"size": MODEL, **change})
    with pytest.raises(InputError, match=error):
        Refiner(Fragment(), name="refiner", config=config)


def test_lite_refiner_needs_a_feedback_flow(artifact):
    config = RefinerOpConfig(artifact=str(artifact), size=MODEL, prior_source="feedback")
    with pytest.raises(InputError, match="feedback flow"):
        Refiner(Fragment(), name="refiner", config=config, connected_inputs=frozenset({"image"}))


def test_lite_refiner_runs_on_image_and_previous_mask(artifact):
    config = RefinerOpConfig(artifact=str(artifact), size=MODEL, prior_source="feedback")
    op = Refiner(Fragment(), name="refiner", config=config)
    first = op.process({"image": preprocessed(0), "feedback": None})["logits"]["logits"]
    second = op.process({"image": preprocessed(0), "feedback": {"mask": box_mask()}})["logits"]["logits"]
    assert first.shape == second.shape == (1, 2, *MODEL)
    assert not np.allclose(first, second)


def test_mask_prior_is_positive_inside_the_class_only():
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 2
    prior = mask_prior(mask, num_classes=3, logit=8.0)
    assert prior.shape == (1, 2, 8, 8)
    assert prior[0, 1, 2, 2] == 8.0 and prior[0, 0, 2, 2] == -8.0 and prior[0, 1, 0, 0] == -8.0


def test_mask_prior_can_leave_the_outside_without_opinion():
    prior = mask_prior(np.pad(np.ones((2, 2), np.uint8), 2), num_classes=2, logit=8.0, outside=0.0)
    assert prior[0, 0, 2, 2] == 8.0 and prior[0, 0, 0, 0] == 0.0


# ------------------------------------------------------------------------------------------- TemporalEMA, Overlay
def test_temporal_ema_gives_a_mask_at_source_resolution():
    message = preprocessed()
    logits = np.zeros((1, 2, *MODEL), np.float32)
    logits[0, 1, 20:40, 10:30] = 5.0
    op = TemporalEMA(Fragment(), name="ema")
    out = op.process({"logits": {**message, "logits": logits}})["mask"]
    assert out["mask"].shape == FRAME_HW and out["mask"].dtype == np.uint8
    assert out["mask"].any() and 0.5 < out["meta"]["confidence"] <= 1.0


def test_overlay_draws_on_a_copy_of_the_frame():
    message = {**frame_message(), "mask": box_mask()}
    frame_before = message["frame"].copy()
    out = Overlay(Fragment(), name="overlay").process({"mask": message})["overlay"]
    assert out["overlay"].shape == (*FRAME_HW, 3)
    assert np.array_equal(message["frame"], frame_before) and not np.array_equal(out["overlay"], frame_before)


# ------------------------------------------------------------------------------------------------ SAM2Prior
def sam2_prior(seed: SeedConfig, **params) -> SAM2Prior:
    config = SAM2PriorConfig(model=ModelConfig(image_size=128), memory=MemoryConfig(every=2), seed=seed, **params)
    return SAM2Prior(Fragment(), name="prior", config=config)


def test_sam2_prior_seeds_from_the_first_gt_mask():
    op = sam2_prior(SeedConfig(from_gt=True))
    empty = op.process({"image": preprocessed(0, gt=np.zeros(FRAME_HW, np.uint8)), "feedback": None})["prior"]
    assert not op.tracker.seeded and np.all(empty["prior"] == 0)
    seeded = op.process({"image": preprocessed(1, gt=box_mask()), "feedback": None})["prior"]
    prior = seeded["prior"]
    assert prior.shape == (1, 1, *MODEL) and op.tracker.seeded
    inside = cv2.resize(box_mask(), (64, 38), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert prior[0, 0, 13:51][inside].mean() > 0 > prior[0, 0, 13:51][~inside].mean()
    nxt = op.process({"image": preprocessed(2), "feedback": {"mask": box_mask()}})["prior"]
    assert nxt["prior"].shape == (1, 1, *MODEL) and nxt["meta"]["sam2"]["seeded"] == []


def test_sam2_prior_seeds_from_a_clicks_file(tmp_path):
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("frame,class,x,y,label\n0,1,30,24,1\n0,1,70,5,0\n")
    op = sam2_prior(SeedConfig(clicks=str(clicks)))
    out = op.process({"image": preprocessed(0), "feedback": None})["prior"]
    assert op.tracker.seeded and out["meta"]["sam2"]["seeded"] == [1]


def test_sam2_prior_seeds_from_a_dragged_box_and_reprompts_on_later_clicks():
    op = sam2_prior(SeedConfig())
    nothing = {"clicks": [], "boxes": [], "meta": {"frame_index": 0}}
    op.process({"image": preprocessed(0), "feedback": None, "clicks": nothing})
    assert not op.tracker.seeded
    drag = {"clicks": [], "boxes": [(1, 20, 12, 40, 36)], "meta": {"frame_index": 1}}
    seeded = op.process({"image": preprocessed(1), "feedback": None, "clicks": drag})["prior"]
    assert op.tracker.seeded and seeded["meta"]["sam2"]["seeded"] == [1]
    click = {"clicks": [(1, 60, 30, 1), (1, 30, 24, 0)], "boxes": [], "meta": {"frame_index": 2}}
    corrected = op.process({"image": preprocessed(2), "feedback": None, "clicks": click})["prior"]
    assert corrected["meta"]["sam2"]["reseeded"] == [1]
    op.process({"image": preprocessed(3), "feedback": None, "clicks": None})
    assert op.tracker.engine.memory_state()[1]["cond_frames"] == [0, 1]  # SAM 2 counts from its seed


def test_sam2_prior_refuses_two_seeds(tmp_path):
    mask = tmp_path / "gt.png"
    cv2.imwrite(str(mask), box_mask() * 255)
    with pytest.raises(InputError, match="give one of"):
        sam2_prior(SeedConfig(box=(1, 1, 10, 10), mask=str(mask)))


def test_sam2_prior_refuses_a_seed_mask_of_another_size(tmp_path):
    mask = tmp_path / "gt.png"
    cv2.imwrite(str(mask), np.zeros((10, 10), np.uint8))
    op = sam2_prior(SeedConfig(mask=str(mask)))
    with pytest.raises(InputError, match="does not match the frame"):
        op.process({"image": preprocessed(0), "feedback": None})


# ------------------------------------------------------------------------------- seeding policy (SAM 2 double)
IMAGE = np.zeros((1, 3, 16, 16), np.float32)
PRESENT = np.pad(np.ones((8, 8), np.uint8), 4)


def run(tracker: PriorTracker, feedbacks: list) -> list:
    return [tracker.frame(IMAGE, fb)[1] for fb in feedbacks]


def test_explicit_seed_gives_clipped_prior_at_model_size():
    tracker = PriorTracker(FakeStreamingSAM2(), SAM2Config(seeding=SeedingConfig(prior_clip=12.0)))
    prior, events = tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    assert events.seeded == [1] and prior.shape == (1, 1, 16, 16) and prior.max() == 12.0


def test_no_seed_while_the_class_is_absent():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(min_area=16, frames=3)))
    empty = np.zeros((16, 16), np.uint8)
    events = run(tracker, [None] + [empty] * 6)
    assert not tracker.seeded and "seed" not in engine.calls and not any(e.seeded for e in events)


def test_auto_seed_after_the_class_is_present_for_n_frames():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(min_area=16, frames=3)))
    events = run(tracker, [None, PRESENT, PRESENT, PRESENT, PRESENT])
    assert [e.frame_index for e in events if e.seeded] == [3]
    assert engine.calls[:3] == ["seed", "condition_on_mask", "step"]


def test_lost_class_is_reseeded_when_it_comes_back():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(condition_every=0, min_area=16, frames=2)))
    tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    engine.absent = {1}
    empty = np.zeros((16, 16), np.uint8)
    lost = run(tracker, [empty, empty])
    assert all(e.absent == (True,) for e in lost)
    back = run(tracker, [PRESENT, PRESENT, PRESENT])
    assert [e.reseeded for e in back] == [[], [1], []]


def test_class_missing_from_the_refined_mask_is_released_after_n_frames():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(min_area=16, release_after=3)))
    tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    empty = np.zeros((16, 16), np.uint8)
    events = run(tracker, [empty] * 4)
    assert [e.released for e in events] == [[], [], [1], []]
    assert not tracker.seeded and engine.calls.count("step") == 2
    prior, _ = tracker.frame(IMAGE, empty)
    assert np.all(prior == 0.0)


def test_released_class_is_seeded_again_when_it_returns():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(min_area=16, frames=2, release_after=2)))
    tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    empty = np.zeros((16, 16), np.uint8)
    events = run(tracker, [empty, empty, empty, PRESENT, PRESENT, PRESENT])
    assert [e.frame_index for e in events if e.released] == [2]
    assert [e.frame_index for e in events if e.seeded] == [5] and engine.calls.count("seed") == 2


def test_release_after_zero_leaves_absence_to_sam2():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(min_area=16, release_after=0)))
    tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    events = run(tracker, [np.zeros((16, 16), np.uint8)] * 30)
    assert tracker.seeded and not any(e.released for e in events) and "forget" not in engine.calls


def test_absent_class_gives_the_empty_prior():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config())
    tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    engine.absent = {1}
    prior, _ = tracker.frame(IMAGE, None)
    assert np.all(prior == 0.0)


def test_refined_mask_conditions_every_k_frames():
    engine = FakeStreamingSAM2()
    tracker = PriorTracker(engine, SAM2Config(seeding=SeedingConfig(condition_every=2)))
    tracker.frame(IMAGE, None, SeedRequest(prompts=prompts_from_mask(PRESENT, 2)))
    events = run(tracker, [PRESENT] * 6)
    assert [e.conditioned for e in events] == [False, False, True, False, True, False]


# ------------------------------------------------------------------------------------------------ DebugSnapshot
def test_debug_snapshot_writes_every_nth_frame_with_an_index(tmp_path):
    import json

    from surgseg.operators.debug_snapshot import DebugSnapshot, DebugSnapshotConfig

    op = DebugSnapshot(Fragment(), name="snap", config=DebugSnapshotConfig(folder=str(tmp_path), every=2))
    for index in range(5):
        message = {**preprocessed(index), "mask": box_mask()}
        message["meta"]["sam2"] = {"object_scores": [1.5], "memory": {1: {"memory_frames": [0]}}}
        op.process({"in": message})
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["frame_000000.npz", "frame_000002.npz", "frame_000004.npz"]
    with np.load(tmp_path / "frame_000002.npz") as saved:
        assert saved["image"].shape == (1, 3, *MODEL) and saved["mask"].shape == FRAME_HW
    lines = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert [line["frame_index"] for line in lines] == [0, 2, 4] and lines[0]["object_scores"] == [1.5]


def test_tracker_hands_sam2_masks_and_prompts_in_its_stretched_square_geometry():
    """A non-square model size is stretched to S×S for SAM 2; the seed mask must land on the same pixels."""
    engine = FakeStreamingSAM2(image_size=64)
    mask = np.zeros((32, 48), np.uint8)
    mask[8:16, 24:36] = 1  # rows 8-15, columns 24-35 of a 32×48 model frame
    PriorTracker(engine, SAM2Config()).frame(torch.zeros(1, 3, 32, 48), request=SeedRequest(mask=mask))
    rows, cols = np.nonzero(engine.masks[0])
    assert engine.masks[0].shape == (64, 64)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 31, 32, 47)
    x0, y0, x1, y1 = engine.prompts[0].classes[1][0].box
    assert (engine.prompts[0].height, engine.prompts[0].width) == (64, 64)
    assert 31 <= x0 <= 33 and 15 <= y0 <= 17 and 46 <= x1 <= 49 and 30 <= y1 <= 33
