"""Export SAM 2's streaming modules to ONNX at a fixed image size, check them against torch, write the manifest.

Parts (see `onnx_parts`): image encoder, memory attention (dynamic memory and pointer token counts), the decoder heads
on points (single-mask and multimask), the decoder's pointer for a mask used as output, the memory encoder. Exported
with the TorchScript exporter (opset 17), from a copy of the model whose rotary attention uses real arithmetic.
Each ONNX graph is run through ONNX Runtime on the tracing inputs (and other token/point counts) and must match the
original torch model within `tolerance`. `--int8` adds dynamically quantised (QInt8 weights) encoder and memory
attention; `ensure_int8` makes them later, beside the fp32 files, on first use. Everything is staged in a hidden
folder and moved into place when every check has passed; the manifest is moved last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surgseg.engines.atomic import atomic_path
from surgseg.engines.errors import InputError
from surgseg.engines.onnx_files import MIN_OPSET, ExportCheckError, exporter_versions, ort_session, write_onnx
from surgseg.engines.sam2.config import ModelConfig, canonical_model_name
from surgseg.engines.sam2.manifest import (
    MANIFEST_NAME,
    QUANTISED_PARTS,
    ExportManifest,
    int8_name,
    weights_label,
)
from surgseg.engines.sam2.model import build_sam2_model
from surgseg.engines.sam2.onnx_parts import (
    HeadsPart,
    ImageEncoderPart,
    MaskHeadsPart,
    MemoryAttentionPart,
    MemoryEncoderPart,
    export_copy,
)

log = logging.getLogger(__name__)

QUANTISATION = "onnxruntime quantize_dynamic: QInt8 weights, per tensor, MatMul only"
SEED = 0


@dataclass(frozen=True)
class ExportConfig:
    model: ModelConfig
    out: Path
    int8: bool = False
    opset: int = MIN_OPSET
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.opset < MIN_OPSET:
            raise InputError(f"--opset: {self.opset} < {MIN_OPSET}")


@dataclass(frozen=True)
class _Case:
    """One part: its module, the ONNX file stem, and input tuples (the first is traced, all are checked)."""

    name: str
    module: torch.nn.Module
    inputs: list[tuple[torch.Tensor, ...]]


def export_sam2(config: ExportConfig) -> tuple[ExportManifest, dict[str, float]]:
    """Export every part into `config.out`; return the manifest and the max |difference| per part vs torch."""
    model = build_sam2_model(config.model)
    if not model.use_high_res_features_in_sam or model.num_feature_levels != 3:
        raise InputError(f"model: {config.model.name} has no high-resolution decoder features; not exportable")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".export-sam2-"))
    try:
        diffs = {case.name: _export_part(case, model, staging, config)
                 for case in _cases(model, export_copy(model))}
        manifest = ExportManifest(
            folder=staging, model=canonical_model_name(config.model.name), image_size=config.model.image_size,
            postprocessing=config.model.postprocessing, opset=config.opset, weights=weights_label(config.model),
            backends=("onnxruntime", "tensorrt"), feat_sizes=_feat_sizes(model), files={}, exporter=exporter_versions())
        for name in diffs:
            manifest = manifest.with_file(name, f"{name}.onnx")
        if config.int8:
            for part in QUANTISED_PARTS:
                manifest = quantise(manifest, part)
        manifest.save()
        for entry in manifest.files.values():
            os.replace(staging / entry["name"], out / entry["name"])
        os.replace(staging / MANIFEST_NAME, out / MANIFEST_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportManifest.load(out), diffs


def quantise(manifest: ExportManifest, part: str) -> ExportManifest:
    """Dynamic int8 quantisation of `part`'s MatMul weights (QInt8, per tensor) beside its fp32 file; the manifest
    gains it. Convolutions stay fp32: ONNX Runtime's ConvInteger made the int8 encoder 1.5x slower than MatMul-only
    quantisation, and per-channel weights cost another 20 % (256 px, 2 threads, measured 2026-11-29)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = manifest.file(part)
    target = manifest.folder / f"{int8_name(part)}.onnx"
    with tempfile.TemporaryDirectory(dir=manifest.folder, prefix=".quantise-") as work, atomic_path(target) as tmp:
        unshared = Path(work) / source.name
        onnx.save(unshare_weights(onnx.load(str(source))), str(unshared))
        with _root_logging_at(logging.WARNING):  # the quantiser logs one INFO line per tensor on the root logger
            quantize_dynamic(str(unshared), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    log.info("quantised %s -> %s", source.name, target.name)
    return manifest.with_file(int8_name(part), target.name, quantisation=QUANTISATION)


@contextlib.contextmanager
def _root_logging_at(level: int) -> Iterator[None]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(previous, level))
    try:
        yield
    finally:
        root.setLevel(previous)


def unshare_weights(graph_model):
    """Give every MatMul/Conv/Gemm its own weight initializer. The exporter merges equal weights into one initializer
    read through Identity nodes (with random weights SAM 2's cloned memory-attention layers are all equal), and
    dynamic quantisation only quantises weights that are a node's direct initializer input."""
    from onnx import numpy_helper

    graph = graph_model.graph
    initializers = {init.name: init for init in graph.initializer}
    aliases = {node.output[0]: node.input[0] for node in graph.node
               if node.op_type == "Identity" and node.input[0] in initializers}
    seen: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("MatMul", "Conv", "Gemm"):
            continue
        for slot, name in enumerate(node.input):
            source = aliases.get(name, name)
            if source not in initializers:
                continue
            if source in seen:
                copy_name = f"{source}__{len(graph.initializer)}"
                graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(initializers[source]),
                                                                 copy_name))
                source = copy_name
            seen.add(source)
            node.input[slot] = source
    return graph_model


def ensure_int8(manifest: ExportManifest) -> ExportManifest:
    """The manifest with int8 encoder and memory attention, quantising (and saving the manifest) when missing."""
    missing = [part for part in QUANTISED_PARTS if not manifest.has(int8_name(part))]
    for part in missing:
        manifest = quantise(manifest, part)
    if missing:
        manifest.save()
    return manifest


def _export_part(case: _Case, reference: torch.nn.Module, folder: Path, config: ExportConfig) -> float:
    """Write `<name>.onnx`, then compare ONNX Runtime with the original (complex-RoPE) model on every input."""
    path = folder / f"{case.name}.onnx"
    write_onnx(case.module, case.inputs[0], path, config.opset, list(case.module.INPUTS), list(case.module.OUTPUTS),
               case.module.DYNAMIC or None)
    session = ort_session(path, threads=2, spinning=False)
    original = _reference_module(case, reference)
    worst = 0.0
    for inputs in case.inputs:
        with torch.no_grad():
            expected = original(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {name: x.numpy() for name, x in zip(case.module.INPUTS, inputs)})
        worst = max([worst, *(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))])
    if worst > config.tolerance:
        raise ExportCheckError(f"{case.name}: ONNX Runtime differs from torch by {worst:.2e} > {config.tolerance}")
    log.info("exported %s (max |diff| vs torch %.2e)", path.name, worst)
    return worst


def _reference_module(case: _Case, model: torch.nn.Module) -> torch.nn.Module:
    """The same part built on the original model (complex rotary attention), for the check."""
    part = case.module
    if isinstance(part, HeadsPart):
        return HeadsPart(model, part.multimask)
    if isinstance(part, MemoryEncoderPart):
        return MemoryEncoderPart(model, part.from_points)
    return type(part)(model)


def _cases(model: torch.nn.Module, copy: torch.nn.Module) -> list[_Case]:
    """Every part with seeded example inputs at the model's size (several token / point counts where dynamic)."""
    gen = torch.Generator().manual_seed(SEED)
    size = model.image_size
    image = torch.randn(1, 3, size, size, generator=gen)
    with torch.no_grad():
        feats = ImageEncoderPart(model)(image)
    (h, w), c, mem_dim = _feat_sizes(model)[-1], model.hidden_dim, model.mem_dim
    hw = h * w
    pix = feats[2].permute(1, 2, 0).reshape(1, c, h, w)
    high = [x.permute(1, 2, 0).reshape(1, x.shape[2], *s) for x, s in zip(feats[:2], _feat_sizes(model)[:2])]

    def memory(entries: int, pointers: int) -> tuple[torch.Tensor, ...]:
        shapes = [(entries * hw, 1, mem_dim)] * 2 + [(pointers, 1, mem_dim)] * 2
        return (feats[2], feats[5], *(torch.randn(*s, generator=gen) for s in shapes))

    def points(count: int, labels: list[int]) -> tuple[torch.Tensor, ...]:
        coords = torch.rand(1, count, 2, generator=gen) * size
        return (pix, *high, coords, torch.tensor([labels], dtype=torch.int32))

    pad = (pix, *high, torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32))
    mask = (torch.randn(1, 1, size, size, generator=gen) > 0).float()
    high_res_logits = 8 * torch.randn(1, 1, size, size, generator=gen)
    cases = [
        _Case("image_encoder", ImageEncoderPart(copy), [(image,)]),
        _Case("memory_attention", MemoryAttentionPart(copy), [memory(2, 8), memory(7, 20), memory(1, 4)]),
        _Case("heads", HeadsPart(copy, multimask=False), [points(3, [2, 3, 1]), points(5, [2, 3, 1, 0, 1])]),
        _Case("heads_multimask", HeadsPart(copy, multimask=True), [pad, points(1, [1])]),
        _Case("mask_heads", MaskHeadsPart(copy), [(pix, mask)]),
        _Case("memory_encoder", MemoryEncoderPart(copy, from_points=False),
              [(feats[2], high_res_logits, torch.tensor([[score]])) for score in (1.5, -2.0)]),
    ]
    if model.binarize_mask_from_pts_for_mem_enc:
        cases.append(_Case("memory_encoder_points", MemoryEncoderPart(copy, from_points=True),
                           [(feats[2], high_res_logits, torch.tensor([[1.5]]))]))
    return cases


def _feat_sizes(model: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """(h, w) of the three feature levels (strides 4, 8, 16)."""
    top = model.image_size // model.backbone_stride
    return ((4 * top, 4 * top), (2 * top, 2 * top), (top, top))
