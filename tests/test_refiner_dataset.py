"""Triplets from an index: masks as class ids, priors from files or simulated, oversampling of rare classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.metrics import dice
from surgseg.training.augment import TripletTransform
from surgseg.training.prior_simulator import PriorSimSettings, simulate_prior
from surgseg.training.refiner_dataset import RefinerDataset, oversampling_weights, read_mask, read_samples


def write_pair(folder: Path, stem: str, value: int = 255) -> dict:
    image = np.full((32, 48, 3), 40, np.uint8)
    mask = np.zeros((32, 48), np.uint8)
    mask[8:24, 12:36] = value
    cv2.imwrite(str(folder / f"{stem}.png"), image)
    cv2.imwrite(str(folder / f"{stem}_mask.png"), mask)
    return {"image_path": f"{stem}.png", "mask_path": f"{stem}_mask.png", "split": "train", "video_id": "v"}


def test_binary_255_mask_reads_as_class_one(tmp_path: Path) -> None:
    write_pair(tmp_path, "a")
    mask = read_mask(tmp_path / "a_mask.png", 2)
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == 16 * 24


def test_mask_with_too_many_classes_is_named(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", value=3)
    with pytest.raises(InputError, match="a_mask.png"):
        read_mask(tmp_path / "a_mask.png", 3)


def test_prior_file_is_resized_to_the_image(tmp_path: Path) -> None:
    row = write_pair(tmp_path, "a")
    (tmp_path / "index.jsonl").write_text(json.dumps(row) + "\n")
    priors = tmp_path / "priors"
    priors.mkdir()
    np.save(priors / "a.npy", np.full((1, 8, 12), 3.0, np.float16))
    dataset = RefinerDataset(read_samples(tmp_path / "index.jsonl"), 2, TripletTransform((32, 48), False),
                             prior_dir=priors)
    item = dataset[0]
    assert item["prior"].shape == (1, 32, 48) and float(item["prior"].mean()) == pytest.approx(3.0)
    assert item["mask"].sum() == 16 * 24


def test_validation_priors_are_fixed_and_training_priors_change_per_epoch(tmp_path: Path) -> None:
    row = write_pair(tmp_path, "a")
    (tmp_path / "index.jsonl").write_text(json.dumps(row) + "\n")
    samples = read_samples(tmp_path / "index.jsonl")
    fixed = RefinerDataset(samples, 2, TripletTransform((32, 48), False), fresh_priors=False)
    fresh = RefinerDataset(samples, 2, TripletTransform((32, 48), False), fresh_priors=True)
    mask = fixed.load(0)[1]
    first_fixed, first_fresh = fixed.prior(0, mask), fresh.prior(0, mask)
    fixed.set_epoch(1)
    fresh.set_epoch(1)
    assert np.array_equal(first_fixed, fixed.prior(0, mask))
    assert not np.array_equal(first_fresh, fresh.prior(0, mask))


def test_oversampling_favours_frames_with_a_rare_class() -> None:
    presence = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 0, 1]], bool)
    weights = oversampling_weights(presence)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[3] == pytest.approx(3 * weights[0])  # 1/frequency: class 2 → 4, class 1 → 4/3


def write_video(folder: Path, frames: int = 6, step: int = 4) -> Path:
    """A textured scene panning right by `step` px per frame with a bright square in it; frame_ids in reverse file
    order so that frame order must come from frame_id."""
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.random((96, 128 + frames * step)).astype(np.float32), (0, 0), 3.0)
    canvas = ((texture - texture.mean()) / texture.std() * 35 + 100).clip(0, 200)
    canvas[30:66, 50:86] += 55
    truth = np.zeros(canvas.shape, np.uint8)
    truth[30:66, 50:86] = 255
    rows = []
    for t in range(frames):
        x0 = frames * step - t * step  # the content moves right by `step` px per frame
        grey = canvas[:, x0 : x0 + 128].astype(np.uint8)
        cv2.imwrite(str(folder / f"f{t}.png"), np.dstack([grey, grey, grey]))
        cv2.imwrite(str(folder / f"f{t}_mask.png"), truth[:, x0 : x0 + 128])
        rows.append({"image_path": f"f{t}.png", "mask_path": f"f{t}_mask.png", "split": "train", "video_id": "v",
                     "frame_id": t})
    (folder / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    return folder / "index.jsonl"


def video_dataset(index: Path, **settings: Any) -> RefinerDataset:
    return RefinerDataset(read_samples(index), 2, TripletTransform((96, 128), False),
                          prior_settings=PriorSimSettings(**settings), seed=3)


def frame_index(dataset: RefinerDataset, t: int) -> int:
    return next(i for i, s in enumerate(dataset.samples) if s.frame_id == t)


def test_default_settings_give_the_same_prior_as_before(tmp_path: Path) -> None:
    dataset = video_dataset(write_video(tmp_path))
    dataset.set_epoch(2)
    for i in range(len(dataset)):
        mask = dataset.load(i)[1]
        old = simulate_prior(mask, 2, np.random.default_rng([3, 2, i]), PriorSimSettings())
        assert np.array_equal(dataset.prior(i, mask), old)


def test_stale_prior_is_the_simulated_prior_of_the_frame_k_earlier(tmp_path: Path) -> None:
    dataset = video_dataset(write_video(tmp_path), stale_prob=1.0, stale_min_age=2, stale_max_age=2)
    now, before, first = frame_index(dataset, 4), frame_index(dataset, 2), frame_index(dataset, 0)
    stale = dataset.prior(now, dataset.load(now)[1])
    expected = simulate_prior(dataset.load(before)[1], 2, np.random.default_rng([3, 0, now]), PriorSimSettings())
    assert np.array_equal(stale, expected)
    one = frame_index(dataset, 1)  # fewer than 2 frames precede: the video's first frame
    expected = simulate_prior(dataset.load(first)[1], 2, np.random.default_rng([3, 0, one]), PriorSimSettings())
    assert np.array_equal(dataset.prior(one, dataset.load(one)[1]), expected)


def test_warped_stale_prior_follows_the_motion(tmp_path: Path) -> None:
    exact = {"offset_std": 0, "jitter_amp": 0, "shift_std": 0, "miss_prob": 0, "blob_prob": 0, "noise_std": 0}
    index = write_video(tmp_path)
    stale = video_dataset(index, stale_prob=1.0, stale_min_age=4, stale_max_age=4, **exact)
    warped = video_dataset(index, stale_prob=1.0, stale_min_age=4, stale_max_age=4, stale_warp_prob=1.0, **exact)
    i = frame_index(stale, 5)
    truth = stale.load(i)[1] > 0
    assert dice(stale.prior(i, truth.astype(np.uint8))[0] > 0, truth) < 0.6  # 16 px behind on a 36 px square
    assert dice(warped.prior(i, truth.astype(np.uint8))[0] > 0, truth) > 0.9


def test_wrong_prior_lies_away_from_the_truth(tmp_path: Path) -> None:
    dataset = video_dataset(write_video(tmp_path), wrong_prob=1.0, wrong_mix=(1.0, 0.0, 0.0))
    for i in range(len(dataset)):
        mask = dataset.load(i)[1]
        prior = dataset.prior(i, mask)
        assert dice(prior[0] > 0, mask > 0) < 0.1 and (prior[0] > 0).sum() > 0.3 * mask.sum()


def write_scope_pair(folder: Path) -> dict:
    """A lit disc on a black border (96x128) whose mask also marks a corner of the border."""
    image = np.zeros((96, 128, 3), np.uint8)
    cv2.circle(image, (64, 48), 40, (60, 120, 200), -1)
    mask = np.zeros((96, 128), np.uint8)
    mask[40:56, 56:72] = 1
    mask[:6, :6] = 1
    cv2.imwrite(str(folder / "s.png"), image)
    cv2.imwrite(str(folder / "s_mask.png"), mask)
    prior = np.zeros((1, 96, 128), np.float32)
    prior[0, 40:56, 56:72] = 5.0
    (folder / "priors").mkdir()
    np.save(folder / "priors" / "s.npy", prior)
    row = {"image_path": "s.png", "mask_path": "s_mask.png", "split": "train", "video_id": "v"}
    (folder / "index.jsonl").write_text(json.dumps(row) + "\n")
    return row


def test_fov_crop_cuts_image_mask_and_prior_file_to_the_detected_field_of_view(tmp_path: Path) -> None:
    write_scope_pair(tmp_path)
    dataset = RefinerDataset(read_samples(tmp_path / "index.jsonl"), 2, TripletTransform((96, 128), False),
                             prior_dir=tmp_path / "priors", fov_crop=True)
    image, mask = dataset.load(0)
    assert image.shape[:2] == mask.shape and 76 <= mask.shape[0] <= 84 and 76 <= mask.shape[1] <= 84
    assert mask.sum() == 16 * 16  # the border's corner is background outside the FOV
    prior = dataset.prior(0, mask)
    assert prior.shape[1:] == mask.shape
    np.testing.assert_array_equal(prior[0] > 0, mask > 0)
