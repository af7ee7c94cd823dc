"""Synthetic datasets on disk: shares of randomised looks and hard negatives, frames cropped to the FOV."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.video.synthetic_instances import InstanceClip
from surgseg.training.synth_dataset import SynthDatasetConfig, write_synthetic_dataset


def test_shares_of_domain_clips_and_negatives_are_spread_over_the_clips(tmp_path: Path):
    config = SynthDatasetConfig(out=tmp_path, clips=8, domain=0.75, negatives=0.25)
    clips = [config.clip(i) for i in range(8)]
    assert sum(c.config.domain for c in clips) == 6
    assert [i for i, c in enumerate(clips) if c.config.presence == ()] == [1, 5]
    assert clips[-1].config.presence is None  # the last clip (the demo's validation clip) has an instrument


def test_fov_crop_stores_the_detected_field_of_view_with_even_sides(tmp_path: Path):
    config = SynthDatasetConfig(out=tmp_path, clips=1, frames=2, size=(160, 128), domain=1.0, fov_crop=True, seed=1)
    rows = write_synthetic_dataset(config)
    info = json.loads((tmp_path / "clip_000" / "clip.json").read_text())
    x0, y0, x1, y1 = info["crop"]
    assert info["look"]["fov"] != "full" and (x1 - x0) * (y1 - y0) < 160 * 128
    frame = cv2.imread(rows[0]["image_path"])
    mask = cv2.imread(rows[0]["mask_path"], cv2.IMREAD_UNCHANGED)
    assert frame.shape[:2] == mask.shape == (y1 - y0, x1 - x0)
    assert frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0
    assert (rows[0]["width"], rows[0]["height"]) == (x1 - x0, y1 - y0)


@pytest.mark.parametrize("bad", [dict(domain=1.5), dict(negatives=-0.1), dict(multi=2.0),
                                 dict(multi=0.5, num_classes=3)])
def test_share_outside_zero_to_one_is_an_input_error(tmp_path: Path, bad):
    with pytest.raises(InputError, match="synth"):
        SynthDatasetConfig(out=tmp_path, **bad)


def test_multi_instrument_clips_take_their_share_and_leave_negatives_alone(tmp_path: Path):
    config = SynthDatasetConfig(out=tmp_path, clips=16, num_classes=2, domain=0.5, negatives=0.25, multi=0.25)
    clips = [config.clip(i) for i in range(16)]
    multi = [i for i, c in enumerate(clips) if isinstance(c, InstanceClip)]
    assert multi == [2, 6, 10, 14]  # classic-look clips: neither the domain clips (odd) nor the negatives
    assert [i for i, c in enumerate(clips) if not multi.count(i) and c.config.presence == ()] == [1, 5, 9, 13]
    assert all(2 <= len(clips[i].config.instruments) <= 3 for i in multi)


def test_multi_instrument_clip_is_written_with_its_class_mask(tmp_path: Path):
    config = SynthDatasetConfig(out=tmp_path, clips=1, frames=4, size=(96, 64), num_classes=2, multi=1.0, seed=2)
    rows = write_synthetic_dataset(config)
    truth = config.clip(0).render(3)
    mask = cv2.imread(rows[3]["mask_path"], cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 96) and set(mask.flat) <= {0, 1}
    assert (mask == truth.mask).all() and mask.any()
    info = json.loads((tmp_path / "clip_000" / "clip.json").read_text())
    assert len(info["instances"]["instruments"]) >= 2 and info["class_names"] == ["background", "instrument"]
