"""Triplets from an index: masks as class ids, priors from files or simulated, oversampling of rare classes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.training.augment import TripletTransform
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
