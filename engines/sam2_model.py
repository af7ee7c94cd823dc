"""Build SAM 2 / 2.1 models from the configs packaged in `sam2`, at any input size, without Hydra's global state."""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from surgseg.engines.errors import InputError

# model name -> config file inside the sam2 package
MODEL_CONFIGS = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
}
SHORT_NAMES = {"tiny", "small", "base_plus", "large"}  # short names mean SAM 2.1
BACKBONE_STRIDE = 16
# What `build_sam2(apply_postprocessing=True)` and the video predictor add (fill-hole filtering excluded).
POSTPROCESSING_OVERRIDES = {
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
    "model.binarize_mask_from_pts_for_mem_enc": True,
}


@dataclass(frozen=True)
class SAM2ModelConfig:
    """Which SAM 2 model to build and how. `postprocessing=False` matches `SAM2VideoPredictor` built with
    `apply_postprocessing=False`; True adds SAM 2's dynamic multimask fallback and binarised click memories."""

    model: str = "sam2.1_hiera_tiny"
    image_size: int = 1024
    checkpoint: str | None = None
    device: str = "cpu"
    seed: int = 0
    postprocessing: bool = False


def canonical_model_name(name: str) -> str:
    """`tiny` -> `sam2.1_hiera_tiny`; full names pass through; unknown names raise InputError."""
    full = f"sam2.1_hiera_{name}" if name in SHORT_NAMES else name
    if full not in MODEL_CONFIGS:
        raise InputError(f"model: unknown SAM 2 model {name!r} (known: {', '.join(sorted(MODEL_CONFIGS))})")
    return full


def check_image_size(image_size: int) -> None:
    """SAM 2 needs a square input whose stride-32 feature map exists: a multiple of 32, at least 128."""
    if image_size < 128 or image_size % 32:
        raise InputError(f"image_size: {image_size} must be a multiple of 32 and >= 128 (e.g. 256, 384, 512, 1024)")


def model_omegaconf(model: str, image_size: int, postprocessing: bool = False):
    """The model's OmegaConf config with the input size and memory-attention feature sizes set consistently."""
    from omegaconf import OmegaConf

    name = canonical_model_name(model)
    check_image_size(image_size)
    resource = importlib.resources.files("sam2").joinpath(MODEL_CONFIGS[name])
    cfg = OmegaConf.create(resource.read_text())
    feat = image_size // BACKBONE_STRIDE
    overrides = {
        "model.image_size": image_size,
        "model.memory_attention.layer.self_attention.feat_sizes": [feat, feat],
        "model.memory_attention.layer.cross_attention.feat_sizes": [feat, feat],
        **(POSTPROCESSING_OVERRIDES if postprocessing else {}),
    }
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=True, force_add=True)
    return cfg


def build_sam2_model(config: SAM2ModelConfig) -> torch.nn.Module:
    """Instantiate `SAM2Base` (eval mode) with random weights from `config.seed`, then the checkpoint if given."""
    from hydra.utils import instantiate

    cfg = model_omegaconf(config.model, config.image_size, config.postprocessing)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = instantiate(cfg.model, _recursive_=True)
    if config.checkpoint is not None:
        load_checkpoint(model, config.checkpoint, canonical_model_name(config.model))
    return model.to(config.device).eval()


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike, model_name: str) -> None:
    """Strictly load an official checkpoint (`{"model": state_dict}`); InputError on any mismatch."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found (see `surgseg weights list` for where to put it)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise InputError(f"{path}: not an official SAM 2 checkpoint (no 'model' state dict)")
    state = payload["model"]
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise InputError(
            f"{path}: does not match model {model_name}: {len(missing)} missing key(s) {missing[:3]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:3]}"
        )
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        key = wrong[0]
        raise InputError(
            f"{path}: does not match model {model_name}: {len(wrong)} shape mismatch(es), first {key} "
            f"{tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        )
    model.load_state_dict(state, strict=True)


def official_state_dict(model: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """The official checkpoint layout for `model`'s weights (used to write test checkpoints)."""
    return {"model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
