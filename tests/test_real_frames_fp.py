"""benchmarks/real_frames_fp.py: false-positive share inside the field of view, frames in numeric order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.real_frames_fp import fp_fraction, frame_paths


@dataclass
class _Artifact:
    num_classes: int = 2

    def image_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, 48, 64)


class _Painter:
    """A stand-in refiner that marks a fixed share of the model input (the top rows) as instrument."""

    def __init__(self, rows: int) -> None:
        self.artifact = _Artifact()
        self.rows = rows

    def run(self, image: np.ndarray, prior: np.ndarray) -> np.ndarray:
        assert not prior.any()  # image only
        logits = np.zeros((1, 2, 48, 64), np.float32)
        logits[0, 1, : self.rows] = 1.0
        return logits


def scope_frame() -> np.ndarray:
    """A lit disc on a black border, 96x128."""
    frame = np.zeros((96, 128, 3), np.uint8)
    cv2.circle(frame, (64, 48), 44, (200, 120, 100), -1)
    return frame


def test_everything_marked_is_the_whole_fov_and_nothing_marked_is_zero():
    assert fp_fraction(_Painter(48), scope_frame(), use_fov=True) == 1.0
    assert fp_fraction(_Painter(0), scope_frame(), use_fov=True) == 0.0


def test_without_the_fov_crop_the_black_border_counts_too():
    everything = fp_fraction(_Painter(48), scope_frame(), use_fov=False)
    half = fp_fraction(_Painter(24), scope_frame(), use_fov=False)
    assert everything == 1.0 and 0.45 < half < 0.55


def test_clinicdb_frames_come_in_frame_number_order(shared_data: Path):
    paths = frame_paths(shared_data / "cvc-clinicdb")
    assert len(paths) == 612 and [p.stem for p in paths[:3]] == ["1", "2", "3"] and paths[-1].stem == "612"
