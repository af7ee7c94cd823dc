"""`surgseg demo` end to end with a small configuration: outputs written, refiner cached and reused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from surgseg.app.demo import DemoConfig, run_demo

pytestmark = pytest.mark.slow


def small_config(out: Path) -> DemoConfig:
    return DemoConfig(out=out, clip_frames=5, model_size=(96, 128), train_clips=2, train_frames=4,
                      train_minutes=0.05, train_epochs=1)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run_demo(small_config(out))


def test_demo_writes_every_output(first_run):
    out, result = first_run
    for name in ("overlay.mp4", "metrics.json", "latency.json", "contact_sheet.png"):
        assert (out / name).is_file(), name
    assert result.frames_out == result.frames_in == 5
    assert json.loads((out / "metrics.json").read_text())["frames"] == 5
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] == 5 * 240


def test_demo_says_when_sam2_weights_are_random(first_run):
    _, result = first_run
    assert result.random_sam2


def test_demo_reuses_the_cached_refiner_when_settings_are_unchanged(first_run):
    out, result = first_run
    assert not result.refiner_reused
    again = run_demo(small_config(out))
    assert again.refiner_reused and "refiner (cached)" in again.timings_s


def test_changed_training_settings_change_the_fingerprint(tmp_path):
    assert small_config(tmp_path).fingerprint() != DemoConfig(out=tmp_path).fingerprint()
    assert small_config(tmp_path).fingerprint() == small_config(tmp_path / "elsewhere").fingerprint()


def test_randomised_looks_and_hard_negatives_change_the_fingerprint(tmp_path):
    base = DemoConfig(out=tmp_path)
    assert base.train_domain > 0 and base.train_negatives > 0  # the demo trains for real footage too (issue 20)
    assert DemoConfig(out=tmp_path, train_domain=0.0).fingerprint() != base.fingerprint()
    assert DemoConfig(out=tmp_path, train_negatives=0.0).fingerprint() != base.fingerprint()
