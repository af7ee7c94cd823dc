"""Simulated priors: shape, reproducibility, error magnitude, and the empty-mask case."""

from __future__ import annotations

import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.metrics import dice
from surgseg.training.prior_simulator import PriorSimSettings, signed_distance, simulate_prior


def disk_mask(shape: tuple[int, int] = (96, 128), radius: int = 25) -> np.ndarray:
    yy, xx = np.indices(shape)
    return ((yy - 48) ** 2 + (xx - 64) ** 2 <= radius**2).astype(np.uint8)


def test_prior_has_one_float32_channel_per_foreground_class() -> None:
    mask = disk_mask()
    mask[:10, :10] = 2
    prior = simulate_prior(mask, 3, np.random.default_rng(0))
    assert prior.shape == (2, 96, 128) and prior.dtype == np.float32


def test_same_seed_same_prior_other_seed_other_prior() -> None:
    mask = disk_mask()
    a = simulate_prior(mask, 2, np.random.default_rng(7))
    b = simulate_prior(mask, 2, np.random.default_rng(7))
    c = simulate_prior(mask, 2, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_default_prior_is_close_but_not_equal_to_the_truth() -> None:
    mask = disk_mask()
    scores = [dice(simulate_prior(mask, 2, np.random.default_rng(s))[0] > 0, mask > 0) for s in range(40)]
    assert 0.7 < np.mean(scores) < 0.95
    assert min(scores) < 0.9


def test_zero_error_settings_reproduce_the_mask() -> None:
    exact = PriorSimSettings(offset_std=0, jitter_amp=0, shift_std=0, miss_prob=0, blob_prob=0, noise_std=0,
                             blur_sigma_px=0)
    mask = disk_mask()
    prior = simulate_prior(mask, 2, np.random.default_rng(0), exact)
    assert dice(prior[0] > 0, mask > 0) > 0.99


def test_empty_mask_gives_a_mostly_negative_prior() -> None:
    prior = simulate_prior(np.zeros((64, 64), np.uint8), 2, np.random.default_rng(0))
    assert np.mean(prior[0] > 0) < 0.2


def test_signed_distance_is_positive_inside() -> None:
    sd = signed_distance(disk_mask() > 0)
    assert sd[48, 64] == pytest.approx(25, abs=1.5) and sd[0, 0] < 0


def test_class_ids_beyond_num_classes_are_rejected() -> None:
    with pytest.raises(InputError):
        simulate_prior(disk_mask() * 3, 2, np.random.default_rng(0))
