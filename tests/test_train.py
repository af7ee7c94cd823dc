"""The training loop: it overfits a tiny synthetic set, its loss falls, and it writes its artefacts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from surgseg.engines.errors import InputError
from surgseg.training.refiner_net import load_refiner
from surgseg.training.train import config_from_dict, load_config, train


def write_synthetic_set(folder: Path, count: int = 6, size: int = 64) -> Path:
    """Bright ellipses on a noisy dark background, their masks, and an index with train and val rows."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        image = rng.integers(20, 70, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        centre = (int(rng.integers(20, size - 20)), int(rng.integers(20, size - 20)))
        axes = (int(rng.integers(8, 16)), int(rng.integers(8, 16)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        image[mask > 0] = (200, 120, 90)
        cv2.imwrite(str(folder / f"img{i}.png"), image)
        cv2.imwrite(str(folder / f"mask{i}.png"), mask * 255)
        rows.append({"image_path": f"img{i}.png", "mask_path": f"mask{i}.png", "split": "train", "video_id": "v0"})
    rows += [dict(row, split="val") for row in rows[:2]]
    index = folder / "index.jsonl"
    index.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return index


def tiny_config(tmp_path: Path, **optim) -> dict:
    return {
        "out_dir": str(tmp_path / "run"),
        "vis_count": 2,
        "val_every": 10,
        "data": {"index": str(write_synthetic_set(tmp_path)), "input_size": [64, 64], "classes": ["bg", "blob"]},
        "model": {"size": "nano"},
        "optim": {"epochs": 100, "batch_size": 2, "accumulate": 1, "lr": 3e-3, "max_steps": 250, **optim},
    }


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One training on the tiny set, shared by the tests below (≈ 20 s on one thread)."""
    tmp_path = tmp_path_factory.mktemp("overfit")
    return tmp_path / "run", train(config_from_dict(tiny_config(tmp_path)))


@pytest.mark.slow
def test_training_overfits_a_tiny_synthetic_set(overfit_run: tuple[Path, dict]) -> None:
    _, summary = overfit_run
    assert summary["steps"] == 250
    assert summary["best_val"]["refined"]["mean_dice"] > 0.9


@pytest.mark.slow
def test_training_loss_decreases(overfit_run: tuple[Path, dict]) -> None:
    run, _ = overfit_run
    with (run / "log.csv").open() as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


@pytest.mark.slow
def test_training_writes_checkpoints_curves_overlays_and_summary(overfit_run: tuple[Path, dict]) -> None:
    run, summary = overfit_run
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "log.csv", "curves.png", "summary.json",
                                                 "val_vis"}
    assert len(list((run / "val_vis").glob("*.png"))) == 2
    model, meta = load_refiner(run / "best.pt")
    assert meta["classes"] == ["bg", "blob"] and meta["input_size"] == [64, 64]
    assert meta["val_metrics"]["refined"]["mean_dice"] == summary["best_val_mean_dice"]
    assert json.loads((run / "summary.json").read_text())["steps"] == 250


def test_resume_continues_from_the_last_epoch(tmp_path: Path) -> None:
    first = train(config_from_dict(tiny_config(tmp_path, epochs=2, max_steps=None)))
    resumed = train(config_from_dict({**tiny_config(tmp_path, epochs=3, max_steps=None), "resume": True}))
    assert (first["epochs"], resumed["epochs"]) == (2, 3)
    assert resumed["steps"] == first["steps"] * 3 // 2
    with (tmp_path / "run" / "log.csv").open() as f:
        assert [int(float(row["epoch"])) for row in csv.DictReader(f)] == [0, 1, 2]


def test_example_config_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "training" / "training.example.yaml"
    config = load_config(example)
    assert config.optim.lr == 3e-4 and config.optim.weight_decay == 0.05
    assert config.loss.dice == 0.5 and config.data.input_size == [288, 384]


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 0.1\n  momentum: 0.9\n")
    with pytest.raises(InputError, match="optim.momentum"):
        load_config(path)


def test_temporal_consistency_pairs_adjacent_frames(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, epochs=1, max_steps=None)
    summary = train(config_from_dict({**config, "loss": {"temporal": 0.1}}))
    with (tmp_path / "run" / "log.csv").open() as f:
        row = next(csv.DictReader(f))
    assert summary["steps"] == 3 and float(row["loss_temporal"]) > 0


def test_cli_trains_from_yaml_and_exits_2_on_a_bad_key(tmp_path: Path) -> None:
    from surgseg.app.cli import main

    config = tiny_config(tmp_path, epochs=1, max_steps=None)
    good, bad = tmp_path / "train.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(config))
    bad.write_text(yaml.safe_dump({**config, "model": {"size": "huge"}}))
    assert main(["train", "--config", str(good)]) == 0
    assert (tmp_path / "run" / "summary.json").is_file()
    assert main(["train", "--config", str(bad)]) == 2
