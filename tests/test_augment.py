"""Augmentations keep image, prior and mask aligned; validation only letterboxes and normalises."""

from __future__ import annotations

import numpy as np
import pytest

from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, PAD_LOGIT
from surgseg.training.augment import AugmentSettings, TripletTransform


def checkerboard(shape: tuple[int, int] = (96, 128), cell: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.indices(shape)
    mask = (((yy // cell) + (xx // cell)) % 2).astype(np.uint8)
    image = np.repeat(np.where(mask > 0, 220, 30).astype(np.uint8)[..., None], 3, axis=2)
    prior = np.where(mask > 0, 8.0, -8.0).astype(np.float32)[None]
    return image, prior, mask


def bright(image_chw: np.ndarray) -> np.ndarray:
    """Pixels brighter than mid-grey, after undoing the ImageNet normalisation."""
    rgb = image_chw.transpose(1, 2, 0) * np.float32(IMAGENET_STD) + np.float32(IMAGENET_MEAN)
    return rgb.mean(axis=2) > 0.5


@pytest.mark.parametrize("seed", range(6))
def test_training_transform_keeps_image_prior_and_mask_aligned(seed: int) -> None:
    image, prior, mask = checkerboard()
    settings = AugmentSettings(prior_dropout_p=0.0, prior_noise_std=0.0, affine_p=1.0)
    out_image, out_prior, out_mask = TripletTransform((64, 64), True, settings)(
        image, prior, mask, np.random.default_rng(seed)
    )
    assert out_image.shape == (3, 64, 64) and out_prior.shape == (1, 64, 64) and out_mask.shape == (64, 64)
    assert np.mean((out_prior[0] > 0) == (out_mask > 0)) > 0.98
    aligned = np.mean(bright(out_image) == (out_mask > 0))
    shifted = np.mean(bright(out_image)[:, 8:] == (out_mask[:, :-8] > 0))  # half a (scaled) cell off
    assert aligned > 0.85
    assert aligned - shifted > 0.3


def test_validation_transform_letterboxes_without_augmenting() -> None:
    image, prior, mask = checkerboard((48, 128))
    out_image, out_prior, out_mask = TripletTransform((64, 64), False)(image, prior, mask, np.random.default_rng(0))
    # 48×128 → scale 0.5 → 24×64 centred: 20 rows of padding above and below.
    assert np.all(out_mask[:20] == 0) and np.all(out_prior[0, :20] == PAD_LOGIT)
    assert np.array_equal(out_mask[20:44], mask[::2, ::2])
    assert np.array_equal(bright(out_image)[20:44], mask[::2, ::2] > 0)


def test_training_transform_is_reproducible_for_a_seed() -> None:
    image, prior, mask = checkerboard()
    transform = TripletTransform((64, 64), True)
    first = transform(image, prior, mask, np.random.default_rng(3))
    second = transform(image, prior, mask, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_prior_dropout_gives_an_uninformative_prior() -> None:
    image, prior, mask = checkerboard()
    transform = TripletTransform((64, 64), True, AugmentSettings(prior_dropout_p=1.0))
    _, out_prior, _ = transform(image, prior, mask, np.random.default_rng(0))
    assert np.all(out_prior == 0)
