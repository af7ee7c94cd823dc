"""`surgseg evaluate`: a refiner scored on any index, prior vs refined, per class / video / frame, with worst frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_export import export_tiny_refiner
from test_train import write_synthetic_set

from surgseg.app.cli import main as surgseg
from surgseg.engines.errors import InputError
from surgseg.training.augment import TripletTransform
from surgseg.training.evaluate import EvaluateConfig, evaluate_refiner
from surgseg.training.refiner_dataset import RefinerDataset, read_samples
from surgseg.training.refiner_net import load_refiner
from surgseg.training.train import evaluate as training_validation

SIZE = (32, 48)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 frames of 64×64 ellipses (split train) and 2 of them again as val, with a second video for the val rows."""
    folder = tmp_path_factory.mktemp("evaluate_data")
    index = write_synthetic_set(folder)
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    for row in rows[-2:]:
        row["video_id"] = "v1"
    index.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return index


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny checkpoint and its exported ONNX artefact."""
    folder = tmp_path_factory.mktemp("evaluate_models")
    export_tiny_refiner(folder, 2, SIZE)
    return folder / "tiny.pt", folder / "models"


@pytest.fixture(scope="module")
def simulated(dataset: Path, models):
    """The checkpoint on every row with simulated priors, the 3 worst frames kept."""
    return evaluate_refiner(EvaluateConfig(model=models[0], index=dataset, worst=3))


def test_checkpoint_scores_equal_the_training_validation_on_the_same_priors(dataset: Path, models) -> None:
    checkpoint, _ = models
    model, meta = load_refiner(checkpoint)
    samples = [s for s in read_samples(dataset) if s.split == "val"]
    reference, _ = training_validation(
        model, RefinerDataset(samples, 2, TripletTransform(tuple(meta["input_size"]), False), fresh_priors=False,
                              seed=1234), list(meta["classes"]), torch.device("cpu"))
    result = evaluate_refiner(EvaluateConfig(model=checkpoint, index=dataset, split="val", seed=1234)).result
    for who in ("prior", "refined"):
        for key in ("mean_dice", "mean_iou", "mean_boundary_f"):
            assert result["scores"][who][key] == pytest.approx(reference[who][key], abs=1e-6)


def test_exported_artefact_scores_like_its_checkpoint(dataset: Path, models, simulated) -> None:
    from_checkpoint = simulated.result
    from_artefact = evaluate_refiner(EvaluateConfig(model=models[1], index=dataset)).result
    assert from_artefact["model"]["kind"].startswith("artefact")
    assert from_artefact["scores"]["refined"]["mean_dice"] == pytest.approx(
        from_checkpoint["scores"]["refined"]["mean_dice"], abs=0.01)
    assert from_artefact["scores"]["prior"]["mean_dice"] == from_checkpoint["scores"]["prior"]["mean_dice"]


def test_scores_come_per_video_and_per_frame(simulated) -> None:
    result = simulated.result
    refined = result["scores"]["refined"]
    assert set(refined["sequences"]) == {"v0", "v1"}
    assert [refined["sequences"][v]["frames"] for v in ("v0", "v1")] == [6, 2]
    assert len(result["frames"]) == 8
    dice = [f["refined"]["dice"] for f in result["frames"]]
    assert refined["mean_dice"] == pytest.approx(np.mean(dice), abs=1e-4)
    assert set(refined["per_class"]) == {"background", "class1"}


def test_offline_priors_from_a_folder_are_scored(dataset: Path, models, tmp_path: Path) -> None:
    """Priors equal to the ground truth (+8 inside, −8 outside) score Dice 1.0."""
    for sample in read_samples(dataset):
        gt = (cv2.imread(str(sample.mask_path), cv2.IMREAD_UNCHANGED) > 0).astype(np.float32)
        np.save(tmp_path / f"{sample.stem}.npy", (gt * 16 - 8)[None])
    result = evaluate_refiner(EvaluateConfig(model=models[0], index=dataset, prior=str(tmp_path))).result
    assert result["prior"]["mode"] == "dir"
    assert result["scores"]["prior"]["mean_dice"] == pytest.approx(1.0)


def test_no_prior_scores_the_refiner_alone(dataset: Path, models) -> None:
    result = evaluate_refiner(EvaluateConfig(model=models[0], index=dataset, prior="none")).result
    assert result["scores"]["prior"] is None
    assert all("prior" not in frame for frame in result["frames"])
    assert 0.0 <= result["scores"]["refined"]["mean_dice"] <= 1.0


def test_worst_frames_are_the_lowest_refined_dice_as_four_panels(simulated) -> None:
    evaluation = simulated
    lowest = sorted(f["refined"]["dice"] for f in evaluation.result["frames"])[:3]
    shown = [float(caption.split("refined Dice ")[1].split(" ")[0]) for caption, _ in evaluation.worst]
    assert shown == pytest.approx(lowest, abs=1e-3)
    assert all(panel.shape == (64, 4 * 64, 3) for _, panel in evaluation.worst)


def test_unknown_split_and_prior_mode_are_refused(dataset: Path, models) -> None:
    with pytest.raises(InputError, match="no rows with split 'test'"):
        evaluate_refiner(EvaluateConfig(model=models[0], index=dataset, split="test"))
    with pytest.raises(InputError, match="--prior"):
        EvaluateConfig(model=models[0], index=dataset, prior="sam3")


def test_cli_writes_evaluation_json_and_report(dataset: Path, models, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert surgseg(["evaluate", str(models[1]), "--index", str(dataset), "--split", "val", "--out", str(out),
                    "--worst", "2", "--threads", "1"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["data"]["frames"] == 2
    page = (out / "report.html").read_text()
    assert page.count('class="panel"') == 2 and "Plotly.newPlot" in page
    assert surgseg(["evaluate", str(models[1]), "--index", str(tmp_path / "missing.jsonl")]) == 2
