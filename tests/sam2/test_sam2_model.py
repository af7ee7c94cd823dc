"""SAM 2 model building: packaged configs, input sizes, post-processing flag, strict checkpoint loading."""

from __future__ import annotations

import pytest
import torch

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.config import ModelConfig, canonical_model_name
from surgseg.engines.sam2.model import build_sam2_model, official_state_dict


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_sam2_model(ModelConfig(image_size=256))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_init_equals_official_build_sam2_for_the_same_seed(tiny) -> None:
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    official = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", device="cpu", apply_postprocessing=False,
                          hydra_overrides_extra=["++model.image_size=256",
                                                 "++model.memory_attention.layer.self_attention.feat_sizes=[16,16]",
                                                 "++model.memory_attention.layer.cross_attention.feat_sizes=[16,16]"])
    assert _same_weights(tiny, official)


@pytest.mark.parametrize("size", [256, 384])
def test_image_size_sets_memory_attention_feature_sizes(size) -> None:
    model = build_sam2_model(ModelConfig(name="sam2_hiera_tiny", image_size=size))
    feat = size // 16
    layer = model.memory_attention.layers[0]
    assert model.image_size == size and model.sam_image_embedding_size == feat
    assert layer.self_attn.freqs_cis.shape[0] == feat * feat
    assert layer.cross_attn_image.freqs_cis.shape[0] == feat * feat


def test_postprocessing_is_off_unless_asked() -> None:
    plain = build_sam2_model(ModelConfig(image_size=128))
    post = build_sam2_model(ModelConfig(image_size=128, postprocessing=True))
    assert not plain.sam_mask_decoder.dynamic_multimask_via_stability and not plain.binarize_mask_from_pts_for_mem_enc
    assert post.sam_mask_decoder.dynamic_multimask_via_stability and post.binarize_mask_from_pts_for_mem_enc


def test_official_layout_checkpoint_loads_strictly(tmp_path, tiny) -> None:
    donor = build_sam2_model(ModelConfig(image_size=128, random_weights_seed=7))
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save(official_state_dict(donor), path)
    loaded = build_sam2_model(ModelConfig(image_size=256, checkpoint=str(path)))
    assert _same_weights(loaded, donor)
    assert not _same_weights(loaded, tiny)


def test_mismatched_checkpoint_names_model_and_first_keys(tmp_path, tiny) -> None:
    state = official_state_dict(tiny)
    state["model"]["extra.weight"] = torch.zeros(1)
    del state["model"]["no_mem_embed"]
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"sam2.1_hiera_tiny: 1 missing key\(s\) \['no_mem_embed'\], "
                                         r"1 unexpected key\(s\) \['extra.weight'\]"):
        build_sam2_model(ModelConfig(image_size=128, checkpoint=str(path)))


def test_missing_checkpoint_names_the_path(tmp_path) -> None:
    with pytest.raises(InputError, match=str(tmp_path / "nope.pt")):
        build_sam2_model(ModelConfig(image_size=128, checkpoint=str(tmp_path / "nope.pt")))


def test_bad_names_and_sizes_are_input_errors() -> None:
    assert canonical_model_name("base_plus") == "sam2.1_hiera_base_plus"
    with pytest.raises(InputError, match="unknown SAM 2 model"):
        canonical_model_name("huge")
    with pytest.raises(InputError, match="image_size: 300"):
        ModelConfig(image_size=300)
