"""Splits: whole groups per split, close to 80/10/10, deterministic, near-duplicate standalone frames kept together."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from surgseg.engines.errors import InputError
from surgseg.training.splits import SplitConfig, leaked_groups, split_rows, split_summary


def video_rows(sizes: list[int]) -> list[dict]:
    return [
        {"image_path": f"/v{v}/{f}.png", "mask_path": f"/m{v}/{f}.png", "video_id": f"v{v}", "frame_id": f,
         "classes_present": [1] if f % 3 else [1, 2]}
        for v, size in enumerate(sizes) for f in range(size)
    ]


def smooth_image(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


SIZES = [37, 12, 55, 8, 20, 41, 16, 9, 30, 24, 18, 60, 5, 27, 33]


def test_no_group_is_in_two_splits_and_fractions_are_close():
    rows = split_rows(video_rows(SIZES), SplitConfig(seed=0))
    assert leaked_groups(rows) == {}
    shares = [entry["share"] for entry in split_summary(rows, 3)]
    assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.02)


def test_same_seed_same_split_other_seed_other_split():
    first = [r["split"] for r in split_rows(video_rows(SIZES), SplitConfig(seed=3))]
    again = [r["split"] for r in split_rows(video_rows(SIZES), SplitConfig(seed=3))]
    other = [r["split"] for r in split_rows(video_rows(SIZES), SplitConfig(seed=4))]
    assert first == again
    assert first != other


def test_every_split_gets_every_class_when_possible():
    summary = split_summary(split_rows(video_rows(SIZES), SplitConfig(seed=1)), 3)
    assert all(min(entry["class_frames"]) > 0 for entry in summary)


def test_near_duplicate_standalone_frames_stay_in_one_split(tmp_path):
    rows = []
    for seed in range(30):
        image = smooth_image(seed)
        cv2.imwrite(str(tmp_path / f"f{seed}.png"), image)
        rows.append({"image_path": str(tmp_path / f"f{seed}.png"), "mask_path": "", "video_id": None,
                     "classes_present": [1]})
    base = smooth_image(0)
    crop = cv2.resize(base[4:92, 3:93], (96, 96))
    ok, jpeg = cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, 60])
    copies = {"copy": base, "crop": crop, "jpeg": cv2.imdecode(jpeg, cv2.IMREAD_COLOR)}
    for name, image in copies.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), image)
        rows.append({"image_path": str(tmp_path / f"{name}.png"), "mask_path": "", "video_id": None,
                     "classes_present": [1]})
    split = split_rows(rows, SplitConfig(seed=0))
    family = [r for r in split if r["group"] == "frame:f0"]
    assert sorted(r["image_path"].rsplit("/", 1)[1] for r in family) == ["copy.png", "crop.png", "f0.png", "jpeg.png"]
    assert len({r["split"] for r in family}) == 1
    assert len({r["group"] for r in split}) == 30


def test_bad_fractions_are_an_input_error():
    with pytest.raises(InputError, match="split fractions"):
        SplitConfig(fractions=(0.8, 0.3, 0.1))
