"""Offline priors: SAM 2 image mode with saved prompts, simulated priors, summary, resume, shards, failures."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from surgseg.app.cli import main
from surgseg.engines.sam2.prompts import prompts_from_mask, save_prompts
from surgseg.training.priors import PriorsConfig, generate_priors, logits_to_source

SIZE = 128


@pytest.fixture
def dataset(tmp_path) -> Path:
    """Three 60x80 frames with masks (one with empty ground truth), an index and saved prompts."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = []
    for i in range(3):
        image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        if i < 2:
            cv2.circle(mask, (30 + 10 * i, 30), 12, 1, -1)
        cv2.imwrite(str(tmp_path / "images" / f"f{i}.png"), image)
        cv2.imwrite(str(tmp_path / "masks" / f"f{i}.png"), mask)
        save_prompts(tmp_path / "prompts" / f"f{i}.prompts.json", prompts_from_mask(mask, 2))
        rows.append({"image_path": f"images/f{i}.png", "mask_path": f"masks/f{i}.png", "video_id": "v",
                     "frame_id": i, "split": "train"})
    (tmp_path / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def _config(root: Path, **kwargs) -> PriorsConfig:
    defaults = {"index": root / "dataset.jsonl", "out": root / "priors", "prompts": root / "prompts",
                "size": SIZE, "num_classes": 2}
    return PriorsConfig(**{**defaults, **kwargs})


def test_sam2_priors_are_float16_per_class_at_image_resolution(dataset) -> None:
    summary = generate_priors(_config(dataset))
    prior = np.load(dataset / "priors" / "f0.npy")
    assert prior.dtype == np.float16 and prior.shape == (1, 60, 80)
    assert summary["counts"] == {"rows": 3, "written": 3, "skipped_existing": 0, "failed": 0,
                                 "empty": summary["counts"]["empty"]}
    assert summary["model"] == "sam2.1_hiera_tiny" and summary["checkpoint_sha256"] == "random-init"
    assert summary["class_coverage"]["1"]["gt_frames"] == 2
    assert {"stem": "f2", "reason": "no foreground in the ground truth"} in summary["empty"]
    assert json.loads((dataset / "priors" / "summary.json").read_text())["counts"] == summary["counts"]


def test_second_run_skips_finished_files(dataset) -> None:
    generate_priors(_config(dataset, source="simulate"))
    before = {p.name: p.stat().st_mtime_ns for p in (dataset / "priors").glob("*.npy")}
    summary = generate_priors(_config(dataset, source="simulate"))
    assert summary["counts"]["skipped_existing"] == 3 and summary["counts"]["written"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (dataset / "priors").glob("*.npy")} == before


def test_missing_prompts_file_is_a_failed_case_with_its_reason(dataset) -> None:
    (dataset / "prompts" / "f1.prompts.json").unlink()
    summary = generate_priors(_config(dataset))
    assert summary["counts"]["failed"] == 1 and summary["counts"]["written"] == 2
    assert summary["failed"][0]["stem"] == "f1" and "prompts file not found" in summary["failed"][0]["reason"]
    assert not (dataset / "priors" / "f1.npy").exists()


def test_simulated_priors_via_cli_are_seeded_and_shards_cover_all_rows(dataset) -> None:
    base = ["priors", "--index", str(dataset / "dataset.jsonl"), "--source", "simulate", "--num-classes", "2"]
    assert main([*base, "--out", str(dataset / "a")]) == 0
    assert main([*base, "--out", str(dataset / "b"), "--shard", "0/2"]) == 0
    assert main([*base, "--out", str(dataset / "b"), "--shard", "1/2"]) == 0
    for i in range(3):
        assert np.array_equal(np.load(dataset / "a" / f"f{i}.npy"), np.load(dataset / "b" / f"f{i}.npy"))
    assert (dataset / "b" / "summary.shard-1-of-2.json").is_file()
    assert main([*base, "--out", str(dataset / "c"), "--shard", "2/2"]) == 2


def test_letterboxed_logits_map_back_to_the_source_frame() -> None:
    low = torch.full((1, 32, 32), -5.0)
    low[0, 4:28, 8:16] = 5.0  # left half of the picture (rows 4..27 hold a 96x128 source letterboxed in 128)
    source = logits_to_source(low, (96, 128))
    assert source.shape == (1, 96, 128)
    assert source[0, 48, 40] > 0 and source[0, 48, 100] < 0
