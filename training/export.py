"""Export a trained refiner to the runtime artefact: ONNX (static H×W, opset ≥ 17) + exported torch program +
`refiner.json`, checked against torch on validation inputs; optionally a TensorRT engine behind an accuracy gate.

Everything is staged in a hidden folder inside `out/` and moved into place only once every check has passed, so a
failed export leaves the previous artefact untouched; `refiner.json` is moved last.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from surgseg.engines.atomic import atomic_path
from surgseg.engines.errors import InputError
from surgseg.engines.onnx_files import MIN_OPSET, ExportCheckError, exporter_versions, write_onnx
from surgseg.engines.refiner.artifact import (
    INPUT_NAMES,
    METADATA_NAME,
    OUTPUT_NAME,
    SCHEMA_VERSION,
    RefinerArtifact,
    sha256_file,
)
from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig
from surgseg.engines.refiner.trt_engine import (
    BuildConfig,
    accuracy_gate,
    build_engine,
    engine_path,
    require_gate,
    timing_cache_path,
)

log = logging.getLogger(__name__)

ONNX_NAME = "refiner.onnx"
PROGRAM_NAME = "refiner.pt2"
CHECKPOINT_KEYS = ("classes", "input_size", "normalisation", "prior_encoding", "data_fingerprint", "val_metrics")


@dataclass
class ExportConfig:
    checkpoint: Path
    out: Path
    index: Path | None = None
    val_frames: int = 8
    opset: int = MIN_OPSET
    tolerance: float = 1e-3
    seed: int = 0
    trt: bool = False
    int8: bool = False
    calib_frames: int = 200
    min_iou: float | None = None

    def __post_init__(self) -> None:
        if self.opset < MIN_OPSET:
            raise InputError(f"--opset: {self.opset} < {MIN_OPSET}")
        if self.val_frames < 1 or self.calib_frames < 1:
            raise InputError("--val-frames and --calib-frames must be >= 1")
        if self.int8 and not self.trt:
            raise InputError("--int8: needs --trt")
        if self.int8 and self.index is None:
            raise InputError("--int8: needs --index (calibration frames are drawn from it)")


@dataclass
class ExportReport:
    folder: Path
    files: dict[str, Path]
    inputs_source: str
    frames: int
    max_abs_diff: dict[str, float]
    tolerance: float
    engine: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationInputs:
    """(image, prior) pairs of batch 1 and a sentence saying where they came from."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    source: str


def export_refiner(config: ExportConfig) -> ExportReport:
    """Load the checkpoint, export it to `config.out`, check it, and build a TensorRT engine when asked."""
    from surgseg.training.refiner_net import load_refiner

    if config.trt:
        require_tensorrt()
    model, meta = load_refiner(config.checkpoint)
    artifact = artifact_from_checkpoint(meta, config.checkpoint, config.out)
    if config.index is not None:
        inputs = inputs_from_index(config.index, artifact, config.val_frames, ("val",), config.seed)
    else:
        inputs = synthetic_inputs(artifact, config.val_frames, config.seed)
    report = export_model(model, artifact, inputs, opset=config.opset, tolerance=config.tolerance)
    if config.trt:
        written = RefinerArtifact.load(report.files["metadata"])
        calibration = None
        if config.int8:
            calibration = inputs_from_index(config.index, written, config.calib_frames, ("train",), config.seed)
        report.engine = build_checked_engine(written, inputs, "int8" if config.int8 else "fp16", calibration,
                                             config.min_iou)
    return report


def artifact_from_checkpoint(meta: dict[str, Any], checkpoint: Path, out: Path) -> RefinerArtifact:
    """The artefact description (files still to be written) from a checkpoint's metadata."""
    missing = [key for key in CHECKPOINT_KEYS if key not in meta]
    if missing:
        raise InputError(f"{checkpoint}: checkpoint key '{missing[0]}' missing")
    payload = {
        "schema_version": SCHEMA_VERSION,
        **{key: meta[key] for key in CHECKPOINT_KEYS},
        "input_size": list(meta["input_size"]),
        "channel_order": "RGB",
        "exporter": exporter_versions(),
        "files": {"onnx": {"name": ONNX_NAME, "sha256": "pending"}},
        "source_checkpoint": {"name": Path(checkpoint).name, "sha256": sha256_file(checkpoint)},
        "refiner_config": meta.get("refiner_config"),
    }
    return RefinerArtifact.from_json(payload, Path(out) / METADATA_NAME)


def export_model(
    model: nn.Module, artifact: RefinerArtifact, inputs: ValidationInputs, opset: int = MIN_OPSET,
    tolerance: float = 1e-3,
) -> ExportReport:
    """Write ONNX + torch program + refiner.json into `artifact.folder` after checking both against `model`."""
    model = model.eval()
    folded = fuse_conv_bn(model)
    example = tuple(torch.zeros(shape) for shape in (artifact.image_shape(), artifact.prior_shape()))
    folder = artifact.folder
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".export-"))
    try:
        write_checked_onnx(folded, example, staging / ONNX_NAME, opset)
        write_program(folded, example, staging / PROGRAM_NAME)
        staged = _with_files(artifact, staging, opset)
        staged.save()
        diffs = compare_backends(model, staged, inputs)
        report_line = ", ".join(f"{name} {value:.2e}" for name, value in diffs.items())
        log.info("max abs logit diff vs torch on %d inputs (%s): %s", len(inputs.pairs), inputs.source, report_line)
        worst = max(diffs, key=diffs.get)
        if diffs[worst] > tolerance:
            raise ExportCheckError(
                f"{worst} differs from torch by {diffs[worst]:.3e} > tolerance {tolerance:.1e} on {inputs.source}; "
                f"nothing written to {folder}"
            )
        check = {"inputs": inputs.source, "max_abs_logit_diff": diffs, "tolerance": tolerance}
        replace(staged, extra={**staged.extra, "export_check": check}).save()
        drop_stale_engines(folder, staged.files["onnx"]["sha256"])
        for name in (ONNX_NAME, PROGRAM_NAME, METADATA_NAME):
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = {"onnx": folder / ONNX_NAME, "torch": folder / PROGRAM_NAME, "metadata": folder / METADATA_NAME}
    return ExportReport(folder, files, inputs.source, len(inputs.pairs), diffs, tolerance)


def drop_stale_engines(folder: Path, onnx_sha256: str) -> list[Path]:
    """Remove TensorRT engines and INT8 calibration caches beside a refiner.onnx that is about to be replaced by a
    different one (the timing cache stays: it holds per-layer timings, valid for any network on that GPU)."""
    previous = folder / METADATA_NAME
    try:
        old = RefinerArtifact.load(previous).files["onnx"]["sha256"] if previous.is_file() else None
    except InputError:
        old = None
    if old == onnx_sha256:
        return []
    stem = Path(ONNX_NAME).stem
    stale = [*folder.glob(f"{stem}.*.engine"), *folder.glob(f"{stem}.*.calib")]
    for path in stale:
        log.info("removing %s: built from the previous refiner.onnx", path.name)
        path.unlink()
    return stale


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential
    folded into that conv (`torch.nn.utils.fusion.fuse_conv_bn_eval`) and replaced by nn.Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for sequence in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequence._modules)
        for conv_name, bn_name in zip(names, names[1:]):
            conv, bn = sequence._modules[conv_name], sequence._modules[bn_name]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                sequence._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                sequence._modules[bn_name] = nn.Identity()
    return folded


def write_checked_onnx(model: nn.Module, example: tuple[torch.Tensor, ...], path: Path, opset: int) -> None:
    """The refiner's ONNX (static shapes) and a check that no BatchNormalization node is left (TensorRT builds get
    the convolutions with BN folded in)."""
    import onnx

    write_onnx(model, example, path, opset, list(INPUT_NAMES), [OUTPUT_NAME])
    unfolded = sum(node.op_type == "BatchNormalization" for node in onnx.load(str(path)).graph.node)
    if unfolded:
        raise ExportCheckError(f"{path.name}: {unfolded} BatchNormalization node(s) left unfolded")


def write_program(model: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """`torch.export` program (weights included) for the runtime's torch backend."""
    with torch.no_grad():
        program = torch.export.export(model, example)
    torch.export.save(program, str(path))


def _with_files(artifact: RefinerArtifact, folder: Path, opset: int) -> RefinerArtifact:
    payload = artifact.to_json()
    names = {"onnx": ONNX_NAME, "torch": PROGRAM_NAME}
    payload["files"] = {kind: {"name": name, "sha256": sha256_file(folder / name)} for kind, name in names.items()}
    payload["opset"] = opset
    return RefinerArtifact.from_json(json.loads(json.dumps(payload)), folder / METADATA_NAME)


def compare_backends(model: nn.Module, artifact: RefinerArtifact, inputs: ValidationInputs) -> dict[str, float]:
    """Max abs logit difference vs the torch model, per runtime backend (ONNX Runtime and exported program, CPU)."""
    runtimes = {
        name: RefinerRuntime(artifact, RuntimeConfig(backend=name, device="cpu"))
        for name in ("onnxruntime", "torch")
    }
    diffs = dict.fromkeys(runtimes, 0.0)
    with torch.no_grad():
        for image, prior in inputs.pairs:
            expected = model(torch.from_numpy(image), torch.from_numpy(prior)).numpy()
            for name, runtime in runtimes.items():
                diffs[name] = max(diffs[name], float(np.abs(runtime.run(image, prior) - expected).max()))
    return diffs


def require_tensorrt():
    """The `tensorrt` module, or an InputError saying what this machine lacks."""
    if not torch.cuda.is_available():
        raise InputError("--trt: needs a CUDA GPU (torch sees none)")
    try:
        import tensorrt
    except ImportError as exc:
        raise InputError(f"--trt: the tensorrt package with TensorRT's libraries is needed ({exc})") from None
    return tensorrt


def build_checked_engine(
    artifact: RefinerArtifact, inputs: ValidationInputs, precision: str,
    calibration: ValidationInputs | None = None, min_iou: float | None = None,
) -> dict[str, Any]:
    """Build (or rebuild) the TensorRT engine beside the ONNX; keep it only if it passes the accuracy gate."""
    trt = require_tensorrt()

    onnx_path, gpu = artifact.file("onnx"), torch.cuda.get_device_name()
    final = engine_path(onnx_path, gpu, trt.__version__, precision)
    build = BuildConfig(precision=precision, timing_cache=timing_cache_path(onnx_path, gpu, trt.__version__))
    with atomic_path(final) as staged:
        build_engine(onnx_path, staged, build, calibration.pairs if calibration else None,
                     final.with_suffix(f".{artifact.files['onnx']['sha256'][:12]}.calib"))
        reference = RefinerRuntime(artifact, RuntimeConfig(backend="onnxruntime", device="cpu"))
        candidate = RefinerRuntime(artifact, RuntimeConfig(backend="tensorrt", engine=str(staged), precision=precision))
        result = accuracy_gate(
            [reference.run(*pair) for pair in inputs.pairs], [candidate.run(*pair) for pair in inputs.pairs],
            precision, min_iou,
        )
        require_gate(result)
    return {"path": final, "precision": precision, "mean_iou": result.mean_iou, "min_iou": result.min_iou,
            "calibration": calibration.source if calibration else None}


def synthetic_inputs(artifact: RefinerArtifact, count: int, seed: int) -> ValidationInputs:
    """Seeded random images (normalised) and priors (logits) at the artefact's input size."""
    rng = np.random.default_rng(seed)
    pairs = [
        (rng.standard_normal(artifact.image_shape(), dtype=np.float32),
         (4 * rng.standard_normal(artifact.prior_shape(), dtype=np.float32)))
        for _ in range(count)
    ]
    h, w = artifact.input_size
    return ValidationInputs(pairs, f"synthetic: {count} seeded random inputs at {h}x{w} (no --index given)")


def inputs_from_index(
    index: Path, artifact: RefinerArtifact, count: int, splits: tuple[str, ...], seed: int
) -> ValidationInputs:
    """`count` frames drawn (seeded) from the index rows of `splits` (all rows if none is marked), prepared as
    training's validation prepares them: letterboxed, normalised, with a fixed simulated SAM 2-like prior."""
    from surgseg.training.augment import TripletTransform  # albumentations: only needed with an index
    from surgseg.training.dataset_index import read_index
    from surgseg.training.refiner_dataset import RefinerDataset, Sample

    samples = [Sample(Path(row["image_path"]), Path(row["mask_path"]), str(row.get("split", "")),
                      str(row.get("video_id", ""))) for row in read_index(index)]
    chosen = [sample for sample in samples if sample.split in splits]
    which = "/".join(splits) if chosen else "no split marked: all rows"
    chosen = chosen or samples
    picks = np.random.default_rng(seed).choice(len(chosen), size=min(count, len(chosen)), replace=False)
    dataset = RefinerDataset([chosen[i] for i in sorted(picks)], artifact.num_classes,
                             TripletTransform(artifact.input_size, train=False), fresh_priors=False, cache=False,
                             seed=seed)
    items = (dataset.item(i, aug_seed=0) for i in range(len(dataset)))
    pairs = [(item["image"][None].numpy(), item["prior"][None].numpy()) for item in items]
    return ValidationInputs(pairs, f"index: {len(pairs)} frames ({which}) of {index}, simulated priors")
