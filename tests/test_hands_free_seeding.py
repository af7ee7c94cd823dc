"""Hands-free seeding end to end: no seed is given; the instrument enters at frame 10, leaves at 30, returns at 52.

A small refiner is trained on synthetic clips (a fixed number of epochs, so the run does not depend on the
machine's speed); SAM 2 has random weights, so everything SAM2Prior decides comes from the refined mask.
"""

from __future__ import annotations

import pytest

from benchmarks.hands_free_seeding import SeedingClip, run_seeding, seeding_report
from surgseg.app.demo import DemoConfig, ensure_refiner
from surgseg.engines.sam2.config import SeedingConfig

AUTO = SeedingConfig()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeding")
    demo = DemoConfig(out=out, model_size=(96, 128), train_clips=4, train_frames=12, train_epochs=30,
                      train_minutes=10.0, threads=1)
    refiner, _, _ = ensure_refiner(demo)
    (out / "run").mkdir()
    return run_seeding(SeedingClip(), refiner, demo.model_size, out / "run", sam2_size=128)


@pytest.mark.slow
def test_each_entry_is_seeded_within_a_few_frames(report):
    assert report["entries"] == [10, 52]
    delays = report["frames_entry_to_seed"]
    assert all(delay is not None and AUTO.frames <= delay <= AUTO.frames + 2 for delay in delays), delays


@pytest.mark.slow
def test_nothing_is_seeded_while_the_instrument_is_absent(report):
    assert report["false_seeds"] == [] and len(report["seeds"]) == 2


@pytest.mark.slow
def test_sam2_is_released_once_the_instrument_has_been_gone_long_enough(report):
    assert report["exits"] == [30]
    assert report["frames_exit_to_release"] == [AUTO.release_after]


@pytest.mark.slow
def test_sam2_runs_only_while_a_class_is_tracked(report):
    first_seed, release, second_seed = report["seeds"][0], report["releases"][0], report["seeds"][1]
    untracked = first_seed + (second_seed - release)
    assert report["cost_ms"]["image_only"]["frames"] == untracked
    assert report["cost_ms"]["sam2_tracking"]["frames"] == SeedingClip().frames - untracked


def test_report_counts_a_seed_on_an_empty_scene_as_false():
    lines = [{"frame_index": t} for t in range(12)]
    lines[4]["seeded"] = [1]  # made on frame 3, where the instrument is present
    lines[9]["reseeded"] = [1]  # frames 8 and 9 are both empty
    lines[7]["released"] = [1]
    report = seeding_report(lines, presence=((1, 6),))
    assert report["frames_entry_to_seed"] == [3] and report["false_seeds"] == [9]
    assert report["exits"] == [6] and report["frames_exit_to_release"] == [1]
