"""The tiny refiner: a depthwise-separable U-Net that turns image ⊕ SAM 2 prior into class logits.

Input: image (B, 3, H, W) ImageNet-normalised RGB and prior (B, num_classes-1, H, W) logits.
Output: logits (B, num_classes, H, W); with `boundary_head`, `forward_with_boundary` also gives (B, 1, H, W) edge
logits for the auxiliary loss. `forward` returns only the segmentation logits, so it exports to ONNX (opset 17) with
static shapes and standard ops: Conv, BatchNorm (folded), Relu, Resize (fixed scale 2), Concat, Add, Mul, Slice.
H and W must be multiples of 2**depth.

Checkpoint contract (read by export and runtime): a torch.save'd dict with keys `model` (state_dict),
`refiner_config` (asdict(RefinerConfig)), `input_size` [H, W], `classes` (names incl. background), `normalisation`
{mean, std}, `prior_encoding` ("logits"), `data_fingerprint`, `val_metrics`, `epoch`, `optimizer`, `scheduler`;
training adds `scaler` (GradScaler state) and `data_rng` (the data order's generator state) for an exact resume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from surgseg.engines.errors import InputError
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclass(frozen=True)
class RefinerConfig:
    """Shape of the network; `width` is the full-resolution channel count, doubled at every stage."""

    num_classes: int = 2
    width: int = 16
    depth: int = 4
    blocks_per_stage: int = 2
    max_channels: int = 256
    boundary_head: bool = True
    activation: str = "relu"
    global_context: bool = True
    prior_skip: bool = True

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise InputError(f"refiner_config.num_classes: {self.num_classes} < 2 (background counts as a class)")
        if self.width < 4 or not 1 <= self.depth <= 6 or self.blocks_per_stage < 1:
            raise InputError(f"refiner_config: width {self.width} / depth {self.depth} out of range")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"refiner_config.activation: {self.activation!r} not in {sorted(ACTIVATIONS)}")

    @property
    def prior_channels(self) -> int:
        return self.num_classes - 1

    @property
    def stride(self) -> int:
        """H and W must be divisible by this."""
        return 2**self.depth

    def channels(self) -> list[int]:
        """Channel count at each resolution level, full resolution first."""
        return [min(self.width * 2**level, self.max_channels) for level in range(self.depth + 1)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RefinerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"refiner_config: unknown key(s) {unknown}")
        return cls(**values)


SIZES: dict[str, RefinerConfig] = {
    "nano": RefinerConfig(width=8, depth=4, blocks_per_stage=1),
    "small": RefinerConfig(width=16, depth=4, blocks_per_stage=2),
    "base": RefinerConfig(width=24, depth=5, blocks_per_stage=2, max_channels=384),
}


def refiner_config(size: str = "small", **overrides: Any) -> RefinerConfig:
    """A named size ("nano", "small" = default, "base") with field overrides (e.g. num_classes)."""
    if size not in SIZES:
        raise InputError(f"model.size: {size!r} not in {sorted(SIZES)}")
    return replace(SIZES[size], **overrides)



class ConvBNAct(nn.Sequential):
    """Conv → BatchNorm → activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "relu") -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            ACTIVATIONS[act](),
        )


class DSBlock(nn.Module):
    """Depthwise 3×3 (optionally strided) then pointwise 1×1; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1, act: str = "relu") -> None:
        super().__init__()
        self.depthwise = ConvBNAct(cin, cin, 3, stride, groups=cin, act=act)
        self.pointwise = ConvBNAct(cin, cout, 1, act=act)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        return x + y if self.residual else y


def _stage(cin: int, cout: int, blocks: int, stride: int, act: str) -> nn.Sequential:
    layers = [DSBlock(cin, cout, stride, act)] + [DSBlock(cout, cout, 1, act) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class TinyRefiner(nn.Module):
    """Encoder (strided DS blocks) + global context + decoder (×2 bilinear upsample, skip concat, DS block)."""

    def __init__(self, config: RefinerConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels()
        act = config.activation
        self.stem = ConvBNAct(3 + config.prior_channels, ch[0], 3, act=act)
        self.encoder = nn.ModuleList(
            _stage(ch[i], ch[i + 1], config.blocks_per_stage, 2, act) for i in range(config.depth)
        )
        self.context = ConvBNAct(ch[-1], ch[-1], 1, act=act) if config.global_context else None
        self.decoder = nn.ModuleList(DSBlock(ch[i + 1] + ch[i], ch[i], 1, act) for i in range(config.depth))
        self.head = nn.Conv2d(ch[0], config.num_classes, 1)
        self.boundary = nn.Conv2d(ch[0], 1, 1) if config.boundary_head else None
        # Per-class gain on the prior added to the foreground logits: the network starts as "trust the prior".
        self.prior_gain = nn.Parameter(torch.full((1, config.prior_channels, 1, 1), 0.5)) if config.prior_skip else None

    def _features(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        x = self.stem(torch.cat([image, prior], dim=1))
        skips = [x]
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        if self.context is not None:
            x = x + self.context(x.mean(dim=(2, 3), keepdim=True))
        for level in reversed(range(self.config.depth)):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.decoder[level](torch.cat([x, skips[level]], dim=1))
        return x

    def _segmentation(self, features: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        if self.prior_gain is None:
            return logits
        return torch.cat([logits[:, :1], logits[:, 1:] + self.prior_gain * prior], dim=1)

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Segmentation logits (B, num_classes, H, W): the export/runtime entry point."""
        return self._segmentation(self._features(image, prior), prior)

    def forward_with_boundary(self, image: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(segmentation logits, boundary logits (B, 1, H, W) or None without a boundary head)."""
        features = self._features(image, prior)
        edges = self.boundary(features) if self.boundary is not None else None
        return self._segmentation(features, prior), edges


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: TinyRefiner, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass at (H, W), counted over Conv2d layers (the rest is negligible)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * (module.in_channels // module.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    image, prior = dummy_inputs(model.config, size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(image, prior)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def dummy_inputs(config: RefinerConfig, size: tuple[int, int], batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero (image, prior) tensors of the shapes the network expects."""
    check_input_size(config, size)
    h, w = size
    return torch.zeros(batch, 3, h, w), torch.zeros(batch, config.prior_channels, h, w)


def check_input_size(config: RefinerConfig, size: tuple[int, int] | list[int]) -> None:
    if len(size) != 2 or any(int(s) <= 0 or int(s) % config.stride for s in size):
        raise InputError(f"input_size: {list(size)} must be [H, W], each a positive multiple of {config.stride}")


def load_refiner(path: str | Path, map_location: str = "cpu") -> tuple[TinyRefiner, dict[str, Any]]:
    """Rebuild the network from a checkpoint; return (model in eval mode, every other key of the checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"{path}: not a refiner checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(payload, dict) or "model" not in payload or "refiner_config" not in payload:
        raise InputError(f"{path}: not a refiner checkpoint (keys 'model' and 'refiner_config' missing)")
    model = TinyRefiner(RefinerConfig.from_dict(payload["refiner_config"]))
    model.load_state_dict(payload["model"])
    model.eval()
    meta = {key: value for key, value in payload.items() if key != "model"}
    return model, meta


def checkpoint_payload(
    model: TinyRefiner,
    *,
    input_size: tuple[int, int] | list[int],
    classes: list[str],
    data_fingerprint: str,
    val_metrics: dict[str, Any],
    epoch: int,
    optimizer: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict in the contract's layout (see the module docstring)."""
    return {
        "model": model.state_dict(),
        "refiner_config": asdict(model.config),
        "input_size": [int(s) for s in input_size],
        "classes": list(classes),
        "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "prior_encoding": "logits",
        "data_fingerprint": data_fingerprint,
        "val_metrics": val_metrics,
        "epoch": int(epoch),
        "optimizer": optimizer,
        "scheduler": scheduler,
    }
