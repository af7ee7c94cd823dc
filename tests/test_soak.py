"""A short soak through replay_fast: memory stays flat after warm-up and no frame is dropped in replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import RSS_LIMIT_MIB, soak


@pytest.mark.slow
def test_short_soak_keeps_memory_flat_and_drops_nothing(tmp_path: Path) -> None:
    result = soak(frames=300, image_size=128, out=tmp_path, window=100)
    assert result["frames_processed"] == 300 and result["frames_dropped"] == 0
    assert result["rss_growth_mib"] <= RSS_LIMIT_MIB
