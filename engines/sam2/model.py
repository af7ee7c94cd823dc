"""Build SAM 2 / 2.1 models from the configs packaged in `sam2`, at any input size, without Hydra's global state."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import torch

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.config import MODEL_CONFIGS, ModelConfig, canonical_model_name, check_image_size

BACKBONE_STRIDE = 16
# What `build_sam2(apply_postprocessing=True)` and the video predictor add (fill-hole filtering excluded).
POSTPROCESSING_OVERRIDES = {
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
    "model.binarize_mask_from_pts_for_mem_enc": True,
}


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


def build_sam2_model(config: ModelConfig, device: str = "cpu") -> torch.nn.Module:
    """Instantiate `SAM2Base` (eval mode) with random weights from `config.random_weights_seed`, then the checkpoint
    if given. `postprocessing=False` matches `SAM2VideoPredictor` built with `apply_postprocessing=False`."""
    from hydra.utils import instantiate

    cfg = model_omegaconf(config.name, config.image_size, config.postprocessing)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.random_weights_seed)
        model = instantiate(cfg.model, _recursive_=True)
    if config.checkpoint is not None:
        load_checkpoint(model, config.checkpoint, canonical_model_name(config.name))
    return model.to(device).eval()


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
