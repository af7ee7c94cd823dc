"""`surgseg sweep`: every grid point over the clips, resumable, sharded, with a Pareto front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graph_helpers import shipped_model_size
from test_export import export_tiny_refiner

from surgseg.app.sweep import parse_grid, run_sweep, take_shard
from surgseg.engines.errors import InputError
from surgseg.graphs import graph_path

MODEL_SIZE = shipped_model_size()


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory) -> tuple[Path, list[str]]:
    """A 2-clip synthetic index and overrides pointing replay_fast at a tiny refiner."""
    from surgseg.training.synth_dataset import SynthDatasetConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("sweep")
    write_synthetic_dataset(SynthDatasetConfig(out=root / "clips", clips=2, frames=3, size=(MODEL_SIZE[1], MODEL_SIZE[0]),
                                               num_classes=2, seed=5))
    refiner = export_tiny_refiner(root, num_classes=2, size=MODEL_SIZE)
    overrides = [f"operators.refiner.artifact={refiner.folder / 'refiner.onnx'}", "device=cpu"]
    return root / "clips" / "dataset.jsonl", overrides


def test_grid_axes_expand_to_every_combination_with_aliases() -> None:
    points = parse_grid(["size=256,512", "memory_every=1,5,8"])
    assert len(points) == 6
    assert points[0].overrides() == ["operators.prior.model.image_size=256", "operators.prior.memory.every=1"]
    assert parse_grid(["operators.ema.alpha=0.5"])[0].overrides() == ["operators.ema.alpha=0.5"]


def test_shards_partition_the_grid() -> None:
    points = parse_grid(["size=128,256,384", "max_memories=2,4"])
    shards = [take_shard(points, f"{i}/3") for i in range(3)]
    assert sorted(p.label for shard in shards for p in shard) == sorted(p.label for p in points)
    assert all(len(shard) == 2 for shard in shards)


def test_malformed_grid_and_shard_are_named() -> None:
    with pytest.raises(InputError, match="--grid size: expected AXIS=V1,V2"):
        parse_grid(["size"])
    with pytest.raises(InputError, match="--shard 3/3: i must be in 0..n-1"):
        take_shard(parse_grid(["size=1"]), "3/3")


@pytest.mark.slow
def test_sweep_scores_every_point_then_resumes_without_rerunning(sweep_inputs, tmp_path: Path) -> None:
    index, overrides = sweep_inputs
    grid = ["size=128", "memory_every=1,3"]
    rows = run_sweep(graph_path("replay_fast"), index, grid, tmp_path, overrides, split=None)
    assert [row["label"] for row in rows] == ["size=128 memory_every=1", "size=128 memory_every=3"]
    for row in rows:  # per-frame scores pooled over both clips of 3 frames
        assert [clip["frames"] for clip in row["clips"].values()] == [3, 3] and row["frames"] == 6
        pooled = sum(clip["dice"] * clip["frames"] for clip in row["clips"].values()) / row["frames"]
        assert row["metrics"]["dice"] == pytest.approx(pooled)
    assert all(row["latency_ms"]["p50"] > 0 for row in rows) and any(row["pareto"] for row in rows)
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "pareto.md").read_text().count("| size=128") == sum(row["pareto"] for row in rows)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")}
    again = run_sweep(graph_path("replay_fast"), index, grid, tmp_path, overrides, split=None)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.json")} == stamps
    assert json.loads((tmp_path / "results.json").read_text())["configurations"] == again
