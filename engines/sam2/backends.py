"""The heavy SAM 2 module calls of the streaming engine behind one small interface, per backend.

`StreamingSAM2` keeps the memory bank (cadence, pruning, re-prompt, absence) and calls only these five methods for
the expensive modules; the torch model still supplies SAM 2's small glue (embeddings, pointer encodings).
`make_modules(model, config)` picks the implementation from `config.runtime.backend`:

- `torch`: the model's own calls (CUDA autocast for bf16/fp16, optional torch.compile or CUDA-graph replay of the
  image encoder);
- `onnxruntime`: the exported ONNX files (`precision` fp32 or int8), CUDA EP on a GPU, CPU EP otherwise;
- `tensorrt`: FP16 engines built from the same ONNX files (needs CUDA and the `tensorrt` package).
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import torch
import torch.nn.functional as F

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.config import SAM2Config

log = logging.getLogger(__name__)

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
TORCH_PRECISIONS = ("fp32", "bf16", "fp16")

Heads = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # low-res, high-res logits, pointer, score
Features = tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[int, int]]]  # (HW,1,C) feats, pos, sizes


class SAM2Modules(Protocol):
    """What the streaming engine runs per frame; float32 torch tensors in and out, on the engine's device."""

    name: str

    def encode_image(self, image: torch.Tensor) -> Features:
        """(1,3,S,S) -> per level: (HW,1,C) features, (HW,1,C) position encodings, (h, w)."""

    def memory_attention(self, curr: torch.Tensor, curr_pos: torch.Tensor, memory: torch.Tensor,
                         memory_pos: torch.Tensor, num_obj_ptr_tokens: int) -> torch.Tensor:
        """Top-level features (HW,1,C) fused with memory tokens (T,1,D), the last `num_obj_ptr_tokens` pointers."""

    def heads(self, pix: torch.Tensor, high_res: list[torch.Tensor], points: dict[str, torch.Tensor] | None,
              multimask: bool) -> Heads:
        """`_forward_sam_heads` on (1,C,h,w) features with point prompts (None: tracking, no prompt)."""

    def mask_as_output(self, pix: torch.Tensor, high_res: list[torch.Tensor], mask: torch.Tensor) -> Heads:
        """`_use_mask_as_output`: a (1,1,S,S) binary mask taken as the frame's output."""

    def encode_memory(self, feat: torch.Tensor, high_res: torch.Tensor, score: torch.Tensor,
                      from_points: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """`_encode_new_memory` from the top-level features (HW,1,C): memory features and their position encoding."""


def make_modules(model: torch.nn.Module, config: SAM2Config, device: str = "cpu",
                 threads: int | None = None) -> SAM2Modules:
    """The backend `config.runtime` asks for, over `model` (torch) or the export in `config.runtime.exported`
    (checked against `config.model` first); `threads`: intra-op threads on a CPU (default `runtime.threads`; 0 = the
    library's own default, or every core but one when SAM 2 runs asynchronously)."""
    runtime = config.runtime
    threads = runtime.threads if threads is None else threads
    if not threads and runtime.mode == "async" and torch.device(device).type == "cpu":
        threads = max(1, (os.cpu_count() or 2) - 1)  # leave the fast path a core (benchmarks/results/realtime_cpu*)
    if runtime.backend == "torch":
        if runtime.precision not in TORCH_PRECISIONS:
            raise InputError(f"runtime.precision: {runtime.precision!r} needs backend onnxruntime (torch runs "
                             f"{', '.join(TORCH_PRECISIONS)})")
        if threads and torch.device(device).type == "cpu":
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        return TorchModules(model, runtime.precision, runtime.compile, device, runtime.cuda_graph)
    if runtime.exported is None:
        raise InputError(f"runtime.exported: backend {runtime.backend} needs the folder written by "
                         "`surgseg export-sam2`")
    from surgseg.engines.sam2.manifest import ExportManifest

    manifest = ExportManifest.load(runtime.exported)
    manifest.check(config.model, runtime.backend, runtime.precision)
    if runtime.backend == "onnxruntime":
        from surgseg.engines.sam2.ort_modules import OrtModules

        return OrtModules(model, manifest, runtime.precision, device, threads)
    from surgseg.engines.sam2.trt_modules import TrtModules

    return TrtModules(model, manifest, config.memory, device)


class TorchModules:
    """The SAM 2 model's own calls (what `StreamingSAM2` always did)."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, precision: str = "fp32", compile: bool = False,
                 device: str = "cpu", cuda_graph: bool = False) -> None:
        self.model = model
        self.device = torch.device(device)
        self.dtype = AUTOCAST.get(precision)
        self.forward_image = model.forward_image
        if compile and self.device.type == "cuda":
            model.image_encoder.forward = torch.compile(model.image_encoder.forward, dynamic=False)
        if cuda_graph:  # refuses clearly on a CPU; outputs are copied, so the features kept for memory stay valid
            from surgseg.engines.sam2.cuda_graph import EncoderGraph

            self.forward_image = EncoderGraph(model, self.dtype)

    def _autocast(self):
        enabled = self.dtype is not None and self.device.type == "cuda"
        return torch.autocast(device_type="cuda", dtype=self.dtype, enabled=enabled)

    def encode_image(self, image: torch.Tensor) -> Features:
        with self._autocast():
            backbone = self.forward_image(image)
        _, feats, pos, sizes = self.model._prepare_backbone_features(backbone)
        return feats, pos, sizes

    def memory_attention(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens):
        with self._autocast():
            return self.model.memory_attention(curr=[curr], curr_pos=[curr_pos], memory=memory,
                                               memory_pos=memory_pos, num_obj_ptr_tokens=num_obj_ptr_tokens)

    def heads(self, pix, high_res, points, multimask):
        with self._autocast():
            out = self.model._forward_sam_heads(backbone_features=pix, point_inputs=points, mask_inputs=None,
                                                high_res_features=high_res, multimask_output=multimask)
        return tuple(x.float() for x in out[3:7])

    def mask_as_output(self, pix, high_res, mask):
        with self._autocast():
            out = self.model._use_mask_as_output(pix, high_res, mask)
        low, high, _, _, _, ptr, score = (x.float() for x in out)
        return low, high, ptr, score

    def encode_memory(self, feat, high_res, score, from_points):
        h = w = self.model.image_size // self.model.backbone_stride
        with self._autocast():
            features, pos = self.model._encode_new_memory(
                current_vision_feats=[feat], feat_sizes=[(h, w)], pred_masks_high_res=high_res,
                object_score_logits=score, is_mask_from_pts=from_points)
        return features, pos[-1]


class ExportedModules:
    """The five calls over exported parts (see `onnx_parts`); subclasses run a part by name in `_run`."""

    name = "exported"

    def __init__(self, model: torch.nn.Module, feat_sizes, device: str) -> None:
        self.model = model
        self.device = torch.device(device)
        self.feat_sizes = [tuple(s) for s in feat_sizes]
        self.parts: set[str] = set()

    def _run(self, part: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def encode_image(self, image: torch.Tensor) -> Features:
        outputs = self._run("image_encoder", image.float())
        return outputs[:3], outputs[3:], list(self.feat_sizes)

    def memory_attention(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens):
        split = memory.shape[0] - num_obj_ptr_tokens
        (fused,) = self._run("memory_attention", curr, curr_pos, memory[:split], memory_pos[:split],
                             memory[split:], memory_pos[split:])
        return fused

    def heads(self, pix, high_res, points, multimask):
        if points is None:  # SAM 2's padding point, as `_forward_sam_heads` adds it
            points = {"point_coords": torch.zeros(1, 1, 2, device=self.device),
                      "point_labels": -torch.ones(1, 1, dtype=torch.int32, device=self.device)}
        part = "heads_multimask" if multimask else "heads"
        low, high, ptr, score = self._run(part, pix, *high_res, points["point_coords"].float(),
                                          points["point_labels"].int())
        return low, high, ptr, score

    def mask_as_output(self, pix, high_res, mask) -> Heads:
        (ptr,) = self._run("mask_heads", pix, mask.float())
        return mask_output_from_pointer(self.model, mask, ptr)

    def encode_memory(self, feat, high_res, score, from_points):
        part = "memory_encoder_points" if from_points and "memory_encoder_points" in self.parts else "memory_encoder"
        features, pos = self._run(part, feat, high_res, score)
        return features, pos


def mask_output_from_pointer(model: torch.nn.Module, mask: torch.Tensor, obj_ptr: torch.Tensor) -> Heads:
    """`_use_mask_as_output` around its decoder call, for backends that run that call exported: the mask as ±10
    logits, its antialiased quarter-size copy, the score from the mask's emptiness, the pointer blended the same way."""
    out_scale, out_bias = 20.0, -10.0
    high = mask.float() * out_scale + out_bias
    low = F.interpolate(high, size=(high.size(-2) // 4, high.size(-1) // 4), align_corners=False, mode="bilinear",
                        antialias=True)
    appearing = torch.any(mask.flatten(1).float() > 0.0, dim=1)[..., None].float()
    score = out_scale * appearing + out_bias
    if model.pred_obj_scores:
        if model.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        obj_ptr = obj_ptr + (1 - appearing) * model.no_obj_ptr
    return low, high, obj_ptr, score
