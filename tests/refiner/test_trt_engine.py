"""TensorRT engine helpers: file naming and the accuracy gate's maths (pure); building only on a GPU with TensorRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surgseg.engines.refiner.runtime import tensorrt_usable
from surgseg.engines.refiner.trt_engine import (
    AccuracyGateError,
    BuildConfig,
    GateResult,
    accuracy_gate,
    engine_path,
    gpu_slug,
    mask_iou,
    masks_from_logits,
    require_gate,
    timing_cache_path,
)


def _logits_for(mask: np.ndarray, num_classes: int = 2) -> np.ndarray:
    """(1, C, H, W) logits whose argmax is `mask`."""
    return (np.eye(num_classes, dtype=np.float32)[mask].transpose(2, 0, 1) * 5.0)[None]


def test_gpu_name_becomes_a_file_name_slug():
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def test_engine_file_is_named_by_gpu_trt_version_and_precision_beside_the_onnx(tmp_path):
    path = engine_path(tmp_path / "refiner.onnx", "NVIDIA H200", "10.13.3.9", "fp16")
    assert path == tmp_path / "refiner.nvidia-h200.10.13.3.9.fp16.engine"


def test_timing_cache_sits_beside_the_onnx(tmp_path):
    path = timing_cache_path(tmp_path / "refiner.onnx", "NVIDIA H100 PCIe", "10.13.3.9")
    assert path == tmp_path / "refiner.nvidia-h100-pcie.10.13.3.9.timing.cache"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp8"):
        engine_path(Path("refiner.onnx"), "gpu", "10", "fp8")
    with pytest.raises(ValueError, match="bf16"):
        BuildConfig(precision="bf16")


def test_mask_iou_of_half_overlapping_squares_is_one_third():
    ref = np.zeros((10, 10), np.uint8)
    cand = np.zeros((10, 10), np.uint8)
    ref[0:4, 0:4] = 1
    cand[0:4, 2:6] = 1
    assert mask_iou(ref, cand, 2) == pytest.approx(8 / 24)


def test_mask_iou_counts_a_class_absent_from_both_as_agreement():
    ref = np.zeros((6, 6), np.uint8)
    ref[:3] = 1
    assert mask_iou(ref, ref.copy(), 3) == 1.0
    assert mask_iou(np.zeros_like(ref), ref, 2) == 0.0


def test_masks_from_logits_take_the_argmax():
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    assert np.array_equal(masks_from_logits(_logits_for(mask))[0], mask)


def test_gate_passes_identical_logits():
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    result = accuracy_gate([_logits_for(mask)], [_logits_for(mask)], "fp16")
    assert result.passed and result.mean_iou == 1.0 and result.min_iou == 0.99 and result.shortfall == 0.0


def test_gate_refuses_and_says_by_how_much():
    ref = np.zeros((10, 10), np.uint8)
    ref[0:5, 0:10] = 1  # 50 px
    cand = ref.copy()
    cand[0, :5] = 0  # 45 of 50 px left: IoU 0.9 per frame
    result = accuracy_gate([_logits_for(ref)] * 2, [_logits_for(cand)] * 2, "fp16")
    assert result.frames == 2
    assert result.mean_iou == pytest.approx(0.9)
    assert result.shortfall == pytest.approx(0.09)
    with pytest.raises(AccuracyGateError, match=r"short by 0\.0900"):
        require_gate(result)


def test_int8_bound_is_configurable():
    result = accuracy_gate([_logits_for(np.ones((4, 4), np.uint8))], [_logits_for(np.ones((4, 4), np.uint8))],
                           "int8", min_iou=0.95)
    assert result.min_iou == 0.95
    assert GateResult("int8", 0.949, 0.95, 1).shortfall == pytest.approx(0.001)


@pytest.mark.cuda
def test_fp16_engine_builds_and_passes_the_gate(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not tensorrt_usable():
        pytest.skip("tensorrt does not import (its libraries cannot be installed on the machines used so far)")
    from test_export import export_tiny_refiner

    from surgseg.training.export import build_checked_engine, synthetic_inputs

    artifact = export_tiny_refiner(tmp_path)
    engine = build_checked_engine(artifact, synthetic_inputs(artifact, 4, seed=0), "fp16")
    assert engine["path"].is_file() and engine["mean_iou"] >= 0.99


class _FakeEngineRuntime:
    """Stands in for the TensorRT backend (no TensorRT here): the fp32 ONNX logits, optionally class-swapped."""

    def __init__(self, reference, swap: bool) -> None:
        self.reference, self.swap = reference, swap

    def run(self, image, prior):
        logits = self.reference.run(image, prior)
        return logits[:, ::-1].copy() if self.swap else logits


def _gate_flow(tmp_path, monkeypatch, swap: bool):
    """build_checked_engine with TensorRT's build and run replaced: only our naming, gate and keep/discard run."""
    import types

    import torch
    from test_export import export_tiny_refiner

    from surgseg.training import export

    artifact = export_tiny_refiner(tmp_path)
    real_runtime = export.RefinerRuntime
    monkeypatch.setattr(export, "require_tensorrt", lambda: types.SimpleNamespace(__version__="10.13.3.9"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(export, "build_engine", lambda onnx, out, *a, **k: Path(out).write_bytes(b"plan"))

    def runtime(art, config):
        reference = real_runtime(art, export.RuntimeConfig(backend="onnxruntime", device="cpu"))
        return _FakeEngineRuntime(reference, swap) if config.backend == "tensorrt" else reference

    monkeypatch.setattr(export, "RefinerRuntime", runtime)
    return artifact, lambda: export.build_checked_engine(artifact, export.synthetic_inputs(artifact, 2, 0), "fp16")


def test_engine_passing_the_gate_is_kept_beside_the_onnx(tmp_path, monkeypatch):
    artifact, build = _gate_flow(tmp_path, monkeypatch, swap=False)
    engine = build()
    assert engine["path"] == artifact.folder / "refiner.nvidia-h100-80gb-hbm3.10.13.3.9.fp16.engine"
    assert engine["path"].read_bytes() == b"plan" and engine["mean_iou"] == 1.0


def test_engine_failing_the_gate_is_refused_and_not_kept(tmp_path, monkeypatch):
    artifact, build = _gate_flow(tmp_path, monkeypatch, swap=True)
    with pytest.raises(AccuracyGateError, match="short by"):
        build()
    assert not list(artifact.folder.glob("*.engine")) and not list(artifact.folder.glob(".*"))
