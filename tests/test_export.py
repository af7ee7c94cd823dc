"""`surgseg export`: ONNX + torch program + refiner.json, checked against torch; nothing half-written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from surgseg.app.cli import main as surgseg
from surgseg.engines.errors import InputError
from surgseg.engines.refiner.artifact import RefinerArtifact
from surgseg.training.export import (
    ExportCheckError,
    ExportConfig,
    artifact_from_checkpoint,
    export_model,
    export_refiner,
    inputs_from_index,
    synthetic_inputs,
)
from surgseg.training.refiner_net import TinyRefiner, checkpoint_payload, refiner_config

SIZE = (32, 48)


def save_tiny_checkpoint(path: Path, num_classes: int = 2, size: tuple[int, int] = SIZE) -> Path:
    """A random-weight 'nano' refiner checkpoint in the training package's layout."""
    torch.manual_seed(0)
    model = TinyRefiner(refiner_config("nano", num_classes=num_classes))
    classes = ["background", *(f"class{k}" for k in range(1, num_classes))]
    payload = checkpoint_payload(model, input_size=size, classes=classes, data_fingerprint="sha256:test",
                                 val_metrics={"mean_dice": 0.5}, epoch=1)
    torch.save(payload, path)
    return path


def export_tiny_refiner(folder: Path, num_classes: int = 2, size: tuple[int, int] = SIZE) -> RefinerArtifact:
    """Export a tiny random refiner into `folder` and return its loaded artefact (shared by the runtime tests)."""
    checkpoint = save_tiny_checkpoint(folder / "tiny.pt", num_classes, size)
    export_refiner(ExportConfig(checkpoint=checkpoint, out=folder / "models", val_frames=2))
    return RefinerArtifact.load(folder / "models")


def test_export_writes_onnx_program_and_metadata(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "best.pt")
    report = export_refiner(ExportConfig(checkpoint=checkpoint, out=tmp_path / "models", val_frames=2))
    artifact = RefinerArtifact.load(tmp_path / "models" / "refiner.onnx")
    assert artifact.classes == ("background", "class1")
    assert artifact.input_size == SIZE
    assert artifact.data_fingerprint == "sha256:test"
    assert artifact.val_metrics == {"mean_dice": 0.5}
    assert artifact.exporter["torch"] == torch.__version__
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["refiner.json", "refiner.onnx", "refiner.pt2"]
    assert report.inputs_source.startswith("synthetic")


def test_onnx_has_static_shapes_and_opset_17(tmp_path):
    artifact = export_tiny_refiner(tmp_path, num_classes=3)
    model = onnx.load(str(artifact.file("onnx")))
    onnx.checker.check_model(model)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    values = (*model.graph.input, *model.graph.output)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    assert dims == {"image": [1, 3, *SIZE], "prior": [1, 2, *SIZE], "logits": [1, 3, *SIZE]}


def test_reported_logit_difference_is_within_tolerance(tmp_path):
    report = export_refiner(ExportConfig(checkpoint=save_tiny_checkpoint(tmp_path / "b.pt"), out=tmp_path / "m",
                                         val_frames=2))
    assert set(report.max_abs_diff) == {"onnxruntime", "torch"}
    assert all(0 <= diff <= 1e-3 for diff in report.max_abs_diff.values())


def test_failed_check_leaves_previous_artefact_untouched(tmp_path):
    artifact = export_tiny_refiner(tmp_path)
    before = {p.name: p.read_bytes() for p in artifact.folder.iterdir()}
    torch.manual_seed(1)
    other = TinyRefiner(refiner_config("nano"))
    with pytest.raises(ExportCheckError, match="tolerance"):
        export_model(other, artifact, synthetic_inputs(artifact, 1, seed=0), tolerance=0.0)
    assert {p.name: p.read_bytes() for p in artifact.folder.iterdir()} == before


def test_reexport_of_a_different_model_drops_engines_of_the_old_onnx(tmp_path):
    artifact = export_tiny_refiner(tmp_path)
    engine = artifact.folder / "refiner.nvidia-h100.10.13.3.9.fp16.engine"
    engine.write_bytes(b"plan")
    cache = artifact.folder / "refiner.nvidia-h100.10.13.3.9.timing.cache"
    cache.write_bytes(b"timings")
    export_refiner(ExportConfig(checkpoint=tmp_path / "tiny.pt", out=artifact.folder, val_frames=1))
    assert engine.is_file()  # same model, same ONNX: its engine still applies
    torch.manual_seed(5)
    export_model(TinyRefiner(refiner_config("nano")), artifact, synthetic_inputs(artifact, 1, seed=0))
    assert not engine.exists() and cache.is_file()


def test_checkpoint_without_metadata_key_is_refused(tmp_path):
    meta = {"classes": ["background", "tool"], "input_size": [32, 48]}
    with pytest.raises(InputError, match="normalisation"):
        artifact_from_checkpoint(meta, save_tiny_checkpoint(tmp_path / "b.pt"), tmp_path)


def test_trt_without_gpu_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpoint = save_tiny_checkpoint(tmp_path / "b.pt")
    with pytest.raises(InputError, match="--trt: needs a CUDA GPU"):
        export_refiner(ExportConfig(checkpoint=checkpoint, out=tmp_path / "models", trt=True))
    assert not (tmp_path / "models").exists()


def test_int8_without_index_is_refused(tmp_path):
    with pytest.raises(InputError, match="--index"):
        ExportConfig(checkpoint=tmp_path / "b.pt", out=tmp_path, trt=True, int8=True)


def _write_index(folder: Path, frames: int) -> Path:
    rows = []
    rng = np.random.default_rng(0)
    for i in range(frames):
        image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[10 + i : 40, 20:50] = 1
        cv2.imwrite(str(folder / f"f{i}.png"), image)
        cv2.imwrite(str(folder / f"f{i}_mask.png"), mask)
        split = "val" if i % 2 else "train"
        rows.append({"image_path": f"f{i}.png", "mask_path": f"f{i}_mask.png", "split": split})
    index = folder / "dataset.jsonl"
    index.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return index


def test_index_inputs_come_from_the_validation_split_with_priors_from_the_masks(tmp_path):
    index = _write_index(tmp_path, 6)
    artifact = export_tiny_refiner(tmp_path)
    inputs = inputs_from_index(index, artifact, 10, ("val",), seed=0)
    assert len(inputs.pairs) == 3 and "val" in inputs.source
    image, prior = inputs.pairs[0]
    assert image.shape == (1, 3, *SIZE) and prior.shape == (1, 1, *SIZE)
    # letterboxed 60x80 -> 32x43 centred: the prior is positive inside the (scaled) square, negative in the corner
    assert prior[0, 0, 16, 20] > 0 > prior[0, 0, 1, 1]


def test_cli_exports_from_an_index_and_records_the_check(tmp_path):
    index = _write_index(tmp_path, 4)
    checkpoint = save_tiny_checkpoint(tmp_path / "best.pt")
    code = surgseg(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "models"),
                    "--index", str(index), "--val-frames", "2"])
    assert code == 0
    check = json.loads((tmp_path / "models" / "refiner.json").read_text())["export_check"]
    assert check["inputs"].startswith("index: 2 frames (val)")
    assert max(check["max_abs_logit_diff"].values()) <= check["tolerance"] == 1e-3


def test_cli_missing_checkpoint_exits_2(tmp_path):
    assert surgseg(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m")]) == 2
