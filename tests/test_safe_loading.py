"""Checkpoints are loaded with weights_only: a pickle that runs code is refused before it can run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from surgseg.engines.errors import InputError


class RunsCode:
    """Unpickling this object would call os.system (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(folder: Path) -> tuple[Path, Path]:
    marker = folder / "pwned"
    path = folder / "evil.pt"
    torch.save({"model": RunsCode(marker), "refiner_config": {}}, path)
    return path, marker


def test_malicious_sam2_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    from surgseg.engines.sam2.model import load_checkpoint

    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(InputError) as caught:
        load_checkpoint(torch.nn.Linear(2, 2), path, "sam2.1_hiera_tiny")
    assert str(caught.value).startswith(f"{path}: cannot read checkpoint") and "\n" not in str(caught.value)
    assert not marker.exists()


def test_malicious_refiner_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    from surgseg.training.refiner_net import load_refiner

    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(InputError) as caught:
        load_refiner(path)
    assert str(caught.value).startswith(f"{path}: not a refiner checkpoint") and "\n" not in str(caught.value)
    assert not marker.exists()
