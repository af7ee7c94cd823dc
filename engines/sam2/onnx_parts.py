"""SAM 2's streaming modules as exportable `nn.Module`s, and rotary attention rewritten in real arithmetic.

ONNX has no complex numbers: `use_real_rope(model)` turns every `RoPEAttention` of a model into `RealRoPEAttention`
(same weights, same state-dict keys), which rotates query/key pairs with cos/sin instead of complex products. The
parts below wrap exactly the calls `StreamingSAM2` makes; each part's `INPUTS` / `OUTPUTS` / `DYNAMIC` name the
ONNX graph's tensors and its variable axes (memory tokens, pointer tokens, prompt points).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive (even, odd) channel pairs of x (B, heads, r*L, d) by the angles of (L, d/2) cos/sin:
    the real form of SAM 2's `x_complex * freqs_cis`, repeated over the r blocks of L tokens."""
    shape = x.shape
    pairs = x.float().reshape(shape[0], shape[1], -1, cos.shape[0], cos.shape[1], 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.reshape(shape).type_as(x)


def _rope_attention_class() -> type:
    from sam2.modeling.sam.transformer import RoPEAttention

    return RoPEAttention


class RealRoPEAttention(_rope_attention_class()):
    """`RoPEAttention` with the rotary encoding in real arithmetic (cos/sin of SAM 2's own angles)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                num_k_exclude_rope: int | torch.Tensor = 0) -> torch.Tensor:
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        cos, sin = self._cos_sin(q)
        q = rotate_pairs(q, cos, sin)
        if q.shape[-2] != k.shape[-2] and not self.rope_k_repeat:
            raise ValueError("RealRoPEAttention: keys longer than queries need rope_k_repeat")
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        k = torch.cat((rotate_pairs(k[:, :, :num_k_rope], cos, sin), k[:, :, num_k_rope:]), dim=2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        return self.out_proj(self._recombine_heads(out))

    def _cos_sin(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (L, d/2) of the axial angles for L query tokens (SAM 2's `freqs_cis`, as real tensors)."""
        cis = self.freqs_cis
        if cis.shape[0] != q.shape[-2]:
            side = int(round(q.shape[-2] ** 0.5))
            cis = self.compute_cis(end_x=side, end_y=side)
        cis = cis.to(q.device)
        return cis.real.contiguous(), cis.imag.contiguous()


def use_real_rope(module: nn.Module) -> nn.Module:
    """Switch every `RoPEAttention` inside `module` (in place) to `RealRoPEAttention`; returns `module`."""
    rope = _rope_attention_class()
    for child in module.modules():
        if type(child) is rope:
            child.__class__ = RealRoPEAttention
    return module


def export_copy(model: nn.Module) -> nn.Module:
    """A CPU fp32 eval copy of the SAM 2 model with real-arithmetic rotary attention, ready to trace."""
    return use_real_rope(copy.deepcopy(model).cpu().float().eval())


class ImageEncoderPart(nn.Module):
    """image (1,3,S,S) -> the three levels' features and position encodings, (HW,1,C) as
    `_prepare_backbone_features` gives them (levels 0/1 already projected by the decoder's conv_s0/s1)."""

    INPUTS = ("image",)
    OUTPUTS = ("feat0", "feat1", "feat2", "pos0", "pos1", "pos2")
    DYNAMIC: dict[str, dict[int, str]] = {}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        backbone = self.model.forward_image(image)
        _, feats, pos, _ = self.model._prepare_backbone_features(backbone)
        return (*feats, *pos)


class MemoryAttentionPart(nn.Module):
    """The current top-level features fused with m spatial memories (m*HW tokens, rotary-encoded) and P object-pointer
    tokens (not rotary-encoded): both token counts are dynamic axes."""

    INPUTS = ("curr", "curr_pos", "memory", "memory_pos", "ptr", "ptr_pos")
    OUTPUTS = ("fused",)
    DYNAMIC = {"memory": {0: "memory_tokens"}, "memory_pos": {0: "memory_tokens"},
               "ptr": {0: "pointer_tokens"}, "ptr_pos": {0: "pointer_tokens"}}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.attention = model.memory_attention

    def forward(self, curr, curr_pos, memory, memory_pos, ptr, ptr_pos) -> torch.Tensor:
        return self.attention(curr=curr, curr_pos=curr_pos, memory=torch.cat((memory, ptr), dim=0),
                              memory_pos=torch.cat((memory_pos, ptr_pos), dim=0), num_obj_ptr_tokens=ptr.shape[0])


class HeadsPart(nn.Module):
    """Prompt encoder + mask decoder (`_forward_sam_heads`) on point prompts (a dynamic number of points; the
    tracking call passes SAM 2's single padding point), with the multimask choice fixed at export."""

    INPUTS = ("pix", "high_res0", "high_res1", "point_coords", "point_labels")
    OUTPUTS = ("low_res", "high_res", "obj_ptr", "score")
    DYNAMIC = {"point_coords": {1: "points"}, "point_labels": {1: "points"}}

    def __init__(self, model: nn.Module, multimask: bool) -> None:
        super().__init__()
        self.model = model
        self.multimask = multimask

    def forward(self, pix, high_res0, high_res1, point_coords, point_labels) -> tuple[torch.Tensor, ...]:
        points = {"point_coords": point_coords, "point_labels": point_labels}
        out = self.model._forward_sam_heads(backbone_features=pix, point_inputs=points, mask_inputs=None,
                                            high_res_features=[high_res0, high_res1], multimask_output=self.multimask)
        return out[3], out[4], out[5], out[6]


class MaskHeadsPart(nn.Module):
    """The object pointer SAM 2 derives from a mask used as output (`_use_mask_as_output`'s decoder call). The
    pointer does not depend on the decoder's high-resolution features: zeros stand in for them."""

    INPUTS = ("pix", "mask")
    OUTPUTS = ("obj_ptr",)
    DYNAMIC: dict[str, dict[int, str]] = {}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pix, mask) -> torch.Tensor:
        decoder = self.model.sam_mask_decoder
        h, w = pix.shape[-2:]
        high_res = [pix.new_zeros(1, decoder.conv_s0.out_channels, 4 * h, 4 * w),
                    pix.new_zeros(1, decoder.conv_s1.out_channels, 2 * h, 2 * w)]
        out = self.model._forward_sam_heads(backbone_features=pix, mask_inputs=self.model.mask_downsample(mask),
                                            high_res_features=high_res)
        return out[5]


class MemoryEncoderPart(nn.Module):
    """`_encode_new_memory` on the current top-level features and the high-res mask logits of one object."""

    INPUTS = ("feat", "high_res", "score")
    OUTPUTS = ("memory", "memory_pos")
    DYNAMIC: dict[str, dict[int, str]] = {}

    def __init__(self, model: nn.Module, from_points: bool) -> None:
        super().__init__()
        self.model = model
        self.from_points = from_points
        side = model.image_size // model.backbone_stride
        self.feat_sizes = [(side, side)]

    def forward(self, feat, high_res, score) -> tuple[torch.Tensor, torch.Tensor]:
        features, pos = self.model._encode_new_memory(
            current_vision_feats=[feat], feat_sizes=self.feat_sizes, pred_masks_high_res=high_res,
            object_score_logits=score, is_mask_from_pts=self.from_points)
        return features, pos[-1]
