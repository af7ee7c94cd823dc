"""Shared fixtures: small CPU budgets, the optional evaluation data, temporary output folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HOLOSCAN_LOG_LEVEL", "WARN")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a clean skip when this machine has no evaluation data."""
    if not (SHARED_DATA / "cvc-clinicdb" / "images").is_dir():
        pytest.skip(f"evaluation data absent: {SHARED_DATA}")
    return SHARED_DATA
