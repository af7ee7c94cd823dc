"""Simulated priors: shape, reproducibility, error magnitude, and the empty-mask case."""

from __future__ import annotations

import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.metrics import dice
from surgseg.training.prior_simulator import (
    WRONG_KINDS,
    PriorPlan,
    PriorSimSettings,
    draw_plan,
    signed_distance,
    simulate_prior,
    wrong_prior,
)


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


def test_default_settings_always_plan_a_fresh_prior() -> None:
    rng = np.random.default_rng(0)
    assert {draw_plan(rng, PriorSimSettings()) for _ in range(200)} == {PriorPlan()}


def test_plan_mix_follows_the_settings() -> None:
    settings = PriorSimSettings(stale_prob=0.3, stale_min_age=2, stale_max_age=4, stale_warp_prob=0.5, wrong_prob=0.2)
    rng = np.random.default_rng(0)
    plans = [draw_plan(rng, settings) for _ in range(4000)]
    stale = [p for p in plans if p.kind == "stale"]
    assert len(stale) / 4000 == pytest.approx(0.3, abs=0.03)
    assert sum(p.kind in WRONG_KINDS for p in plans) / 4000 == pytest.approx(0.2, abs=0.03)
    assert {p.age for p in stale} == {2, 3, 4}
    assert np.mean([p.warp for p in stale]) == pytest.approx(0.5, abs=0.05)


def test_shifted_wrong_prior_lies_away_from_the_truth() -> None:
    mask = disk_mask(radius=18)
    for seed in range(10):
        prior = wrong_prior("shift", mask, 2, np.random.default_rng(seed))
        assert dice(prior[0] > 0, mask > 0) < 0.05
        assert 0.3 < (prior[0] > 0).sum() / mask.sum() < 2.5  # an object's worth of confident foreground
        assert prior[0].max() > 8.0


def test_object_wrong_prior_is_the_other_frames_object() -> None:
    mask, other = disk_mask(radius=12), np.zeros((96, 128), np.uint8)
    other[10:40, 80:120] = 1
    prior = wrong_prior("object", mask, 2, np.random.default_rng(0), other_mask=other)
    assert dice(prior[0] > 0, other > 0) > 0.6 and dice(prior[0] > 0, mask > 0) < 0.05


def test_noise_prior_is_confident_blotches_covering_part_of_the_frame() -> None:
    for seed in range(10):
        prior = wrong_prior("noise", disk_mask(), 2, np.random.default_rng(seed))
        cover = np.mean(prior[0] > 0)
        assert 0.03 < cover < 0.45
        assert np.mean(np.abs(prior[0]) > 4.0) > 0.5


def test_bad_mix_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="stale_prob"):
        PriorSimSettings(stale_prob=0.7, wrong_prob=0.5)
    with pytest.raises(InputError, match="wrong_mix"):
        PriorSimSettings(wrong_mix=(1.0, 0.0))
    with pytest.raises(InputError, match="kind"):
        wrong_prior("ghost", disk_mask(), 2, np.random.default_rng(0))
