"""Streaming SAM 2: equality with the official video predictor, bounded memory, re-prompting, absence, inputs."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from sam2_clips import two_object_clip

from surgseg.engines.config import validate_config
from surgseg.engines.errors import InputError
from surgseg.engines.preprocess import mask_to_model
from surgseg.engines.sam2.prompts import prompts_from_mask
from surgseg.engines.sam2.config import MemoryConfig, ModelConfig, SAM2Config, SeedingConfig
from surgseg.engines.sam2.model import build_sam2_model
from surgseg.engines.sam2.stream import StreamingSAM2, prune_victim

SMALL = 128  # fast size for behaviour tests


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    return build_sam2_model(ModelConfig(image_size=SMALL))


def _engine(model: torch.nn.Module, seeding: SeedingConfig | None = None, **memory) -> StreamingSAM2:
    """An engine on `model` with the given memory settings (MemoryConfig's fields) and seeding settings."""
    config = SAM2Config(model=ModelConfig(image_size=int(model.image_size)), memory=MemoryConfig(**memory),
                        seeding=seeding or SeedingConfig())
    return StreamingSAM2(config, model=model)


@pytest.mark.slow
def test_matches_official_video_predictor_with_k1_n6_fifo(tmp_path) -> None:
    from sam2.build_sam import build_sam2_video_predictor

    size, count = 256, 20
    frames, masks = two_object_clip(count, (size, size))
    for t, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{t:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    model = build_sam2_model(ModelConfig(image_size=size))
    feat = size // 16
    predictor = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml", device="cpu", apply_postprocessing=False,
        hydra_overrides_extra=[f"++model.image_size={size}",
                               f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
                               f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]"])
    predictor.load_state_dict(model.state_dict())
    predictor.eval()
    prompts = prompts_from_mask(masks[0], num_classes=3)
    state = predictor.init_state(str(tmp_path))
    for class_id in sorted(prompts.classes):
        p = prompts.merged(class_id)
        predictor.add_new_points_or_box(state, 0, class_id, points=np.array(p.points, np.float32),
                                        labels=np.array(p.labels, np.int32), box=np.array(p.box, np.float32))
    reference = {}
    for t, obj_ids, _ in predictor.propagate_in_video(state):
        per_obj = state["output_dict_per_obj"]
        reference[t] = [
            (per_obj[i]["cond_frame_outputs"].get(t) or per_obj[i]["non_cond_frame_outputs"][t])["pred_masks"][0, 0]
            for i in range(len(obj_ids))
        ]

    engine = _engine(model, every=1, max_memories=6, pruning="fifo")
    worst = 0.0
    for t in range(count):
        image = state["images"][t][None]
        out = engine.seed(image, prompts) if t == 0 else engine.step(image)
        for k, class_id in enumerate(sorted(prompts.classes)):
            worst = max(worst, float((out.logits[class_id - 1] - reference[t][k]).abs().max()))
    assert worst <= 1e-4
    assert engine.memory_state()[1]["memory_frames"] == [13, 14, 15, 16, 17, 18]


def test_bank_stops_growing_once_full_with_k5_n4(small_model) -> None:
    frames, masks = two_object_clip(41, (96, 128))
    engine = _engine(small_model, every=5, max_memories=4, max_cond_frames=2, max_obj_ptrs=8)
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    counts = []
    for frame in frames[1:]:
        engine.step(frame)
        counts.append(engine.stored_entries())
    state = engine.memory_state()[1]
    assert state["memory_frames"] == [20, 25, 30, 35]
    assert state["cond_frames"] == [0]
    assert len(state["pointer_frames"]) == 7
    assert max(counts) == counts[-1] == counts[25] == 2 * (1 + 4 + 7)


def test_more_than_six_memories_are_kept_and_read(small_model) -> None:
    frames, masks = two_object_clip(11, (96, 128))
    engine = _engine(small_model, every=1, max_memories=8)
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    for frame in frames[1:]:
        out = engine.step(frame)
    assert engine.memory_state()[2]["memory_frames"] == list(range(2, 10))
    assert torch.isfinite(out.logits).all()


def test_similarity_pruning_drops_the_entry_most_like_the_newest() -> None:
    gen = torch.Generator().manual_seed(0)
    entries = [torch.randn(1, 8, 4, 4, generator=gen) for _ in range(4)]
    newest = entries[2] + 0.01 * torch.randn(1, 8, 4, 4, generator=gen)
    assert prune_victim(entries, newest, "similarity") == 2
    assert prune_victim(entries, newest, "fifo") == 0


def test_similarity_pruned_bank_stays_bounded(small_model) -> None:
    frames, masks = two_object_clip(9, (96, 128))
    engine = _engine(small_model, every=1, max_memories=3, pruning="similarity")
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    for frame in frames[1:]:
        engine.step(frame)
    memory = engine.memory_state()[1]["memory_frames"]
    assert len(memory) == 3 and memory[-1] == 7


def test_reprompt_keeps_memory_and_adds_a_conditioning_frame(small_model) -> None:
    frames, masks = two_object_clip(6, (96, 128))
    engine = _engine(small_model, every=1, max_memories=6)
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    for frame in frames[1:4]:
        engine.step(frame)
    prompts = prompts_from_mask(masks[3], 3)
    fresh = engine.image_logits(frames[3], prompts).logits
    out = engine.reprompt(prompts)
    assert float((out.logits - fresh).abs().max()) > 1e-4  # memory shaped the re-prompted output
    engine.step(frames[4])
    state = engine.memory_state()[1]
    assert state["cond_frames"] == [0, 3]
    assert state["memory_frames"] == [1, 2]


def test_condition_on_mask_outputs_the_mask_and_bounds_conditioning_frames(small_model) -> None:
    frames, masks = two_object_clip(6, (96, 128))
    engine = _engine(small_model, max_cond_frames=3)
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    for t in range(1, 6):
        engine.step(frames[t])
        out = engine.condition_on_mask(masks[t])
    boxed = cv2.resize(mask_to_model(masks[5], (SMALL, SMALL)), (SMALL // 4, SMALL // 4),
                       interpolation=cv2.INTER_AREA)
    logits = out.logits[0].numpy()
    assert logits.min() >= -10 - 1e-4 and logits.max() <= 10 + 1e-4
    assert np.mean((logits > 0) == (boxed == 1)) > 0.97
    engine.step(frames[5])
    assert engine.memory_state()[1]["cond_frames"] == [0, 4, 5]


def test_class_reported_absent_after_nonpositive_scores_then_reseeded(small_model) -> None:
    model = copy.deepcopy(small_model)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(-50.0)
    frames, masks = two_object_clip(5, (96, 128))
    engine = _engine(model, seeding=SeedingConfig(absent_after=3))
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    flags = [engine.step(frame).absent for frame in frames[1:4]]
    assert flags == [(False, False), (False, False), (True, True)]
    assert (engine.step(frames[4]).logits <= -1000).all()
    assert engine.reprompt(prompts_from_mask(masks[4], 3)).absent == (False, False)


def test_forgotten_class_is_absent_while_the_other_keeps_tracking(small_model) -> None:
    frames, masks = two_object_clip(4, (96, 128))
    engine = _engine(small_model)
    engine.seed(frames[0], prompts_from_mask(masks[0], 3))
    engine.step(frames[1])
    engine.forget(1)
    out = engine.step(frames[2])
    assert sorted(engine.memory_state()) == [2] and out.absent == (True, False)
    assert (out.logits[0] <= -1000).all() and (out.logits[1] > -1000).any()
    assert engine.condition_on_mask(masks[2]).absent == (False, False)


def test_frame_and_preprocessed_tensor_inputs_agree(small_model) -> None:
    frames, masks = two_object_clip(2, (96, 128))
    prompts = prompts_from_mask(masks[0], 3)
    a, b = _engine(small_model), _engine(small_model)
    a.seed(frames[0], prompts)
    b.seed(b.preprocess(frames[0]), prompts)
    assert torch.equal(a.step(frames[1]).logits, b.step(b.preprocess(frames[1])).logits)
    with pytest.raises(InputError, match="image"):
        b.step(torch.zeros(1, 3, 64, 64))


def test_image_logits_equal_a_seed_and_leave_state_alone(small_model) -> None:
    frames, masks = two_object_clip(3, (96, 128))
    prompts = prompts_from_mask(masks[0], 3)
    engine = _engine(small_model)
    seeded = engine.seed(frames[0], prompts)
    engine.step(frames[1])
    before = engine.memory_state()
    image_mode = engine.image_logits(frames[0], prompts)
    assert torch.equal(image_mode.logits, seeded.logits)
    assert engine.memory_state() == before and engine.frame_index == 1


def test_invalid_config_names_the_key() -> None:
    with pytest.raises(InputError, match="operators.prior.memory.pruning: invalid value 'lru'"):
        validate_config(SAM2Config, {"memory": {"pruning": "lru"}}, "operators.prior")
