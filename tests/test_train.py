"""The training loop: it overfits a tiny synthetic set, its loss falls, and it writes its artefacts."""

from __future__ import annotations

import copy
import csv
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from surgseg.engines.errors import InputError
from surgseg.training import train as train_module
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


class Interrupted(Exception):
    """Stands in for a crash or a killed job after an epoch's checkpoint."""


def test_interrupted_run_resumes_exactly_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    straight = train(config_from_dict(tiny_config(tmp_path / "a", epochs=2, max_steps=None)))
    checkpoint = train_module.validate_and_checkpoint

    def stop_after_epoch_0(run, epoch, row, finished):
        checkpoint(run, epoch, row, finished)
        if epoch == 0:
            raise Interrupted

    monkeypatch.setattr(train_module, "validate_and_checkpoint", stop_after_epoch_0)
    with pytest.raises(Interrupted):
        train(config_from_dict(tiny_config(tmp_path / "b", epochs=2, max_steps=None)))
    monkeypatch.undo()
    resumed = train(config_from_dict({**tiny_config(tmp_path / "b", epochs=2, max_steps=None), "resume": True}))
    assert (resumed["epochs"], resumed["steps"]) == (straight["epochs"], straight["steps"]) == (2, 6)
    with (tmp_path / "b" / "run" / "log.csv").open() as f:
        assert [int(float(row["epoch"])) for row in csv.DictReader(f)] == [0, 1]
    a, b = (torch.load(tmp_path / x / "run" / "last.pt", weights_only=True) for x in ("a", "b"))
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.parametrize(("progress", "factor"), [(0.0, 1e-3), (0.05, 0.5), (0.1, 1.0), (0.55, 0.51), (1.0, 0.02),
                                                  (1.5, 0.02)])
def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor(progress: float, factor: float) -> None:
    assert train_module.lr_factor(progress, warmup=0.1, min_ratio=0.02) == pytest.approx(factor)


def test_time_budget_stops_the_run_and_drives_the_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(range(10**6))
    monkeypatch.setattr(train_module.Budget, "clock", staticmethod(lambda: float(next(ticks))))  # 1 s per reading
    summary = train(config_from_dict(tiny_config(tmp_path, epochs=100, max_steps=250, max_minutes=0.25)))
    assert summary["elapsed_s"] >= 15 and 0 < summary["steps"] < 15
    with (tmp_path / "run" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["lr"]) < 3e-3 * train_module.lr_factor(0.5, 0.05, 0.02)  # past half-way: by time, not steps


def test_accumulated_step_applies_the_mean_gradient_of_its_micro_batches(tmp_path: Path) -> None:
    run = train_module.set_up(config_from_dict(tiny_config(tmp_path, batch_size=2, accumulate=2, max_steps=1,
                                                           grad_clip=1e9)))
    reference = copy.deepcopy(run.refiner).train()
    order = run.generator.get_state()
    micro_batches = list(itertools.islice(run.loader, 2))
    run.generator.set_state(order)
    grads = []
    for batch in micro_batches:
        reference.zero_grad()
        loss, _ = train_module.forward_loss(train_module.TrainingForward(reference), run.criterion, batch, run.device,
                                            False)
        loss.backward()
        grads.append([p.grad.clone() for p in reference.parameters()])
    applied = []
    run.optimizer.register_step_pre_hook(
        lambda *_: applied.append([p.grad.clone() for p in run.refiner.parameters()]))
    train_module.resume(run)
    train_module.train_one_epoch(run, 0)
    assert run.step == 1 and len(applied) == 1
    for seen, first, second in zip(applied[0], *grads):
        torch.testing.assert_close(seen, (first + second) / 2, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("section", "values", "key"), [
    ("optim", {"lr": "abc"}, "optim.lr"),
    ("data", {"input_size": 5}, "data.input_size"),
    ("optim", {"accumulate": 0}, "optim.accumulate"),
    ("data", {"prior_sim": {"miss_prob": "often"}}, "data.prior_sim.miss_prob"),
    ("model", {"overrides": {"widht": 12}}, "model.overrides.widht"),
])
def test_wrong_training_value_exits_2_naming_the_key(tmp_path: Path, caplog: pytest.LogCaptureFixture, section: str,
                                                     values: dict, key: str) -> None:
    from surgseg.app.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({section: values}))
    assert main(["train", "--config", str(bad)]) == 2
    assert caplog.records[-1].getMessage().startswith(f"{bad}: {key}: ")


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
