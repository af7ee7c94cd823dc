"""StreamingSAM2's less travelled branches on a random-weight SAM 2 at 128 px, and the SAM 2 test double's interface."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from sam2_double import CONTROLS, FakeStreamingSAM2, RecordingModules

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.backends import make_modules
from surgseg.engines.sam2.config import MemoryConfig, ModelConfig, SAM2Config
from surgseg.engines.sam2.model import build_sam2_model
from surgseg.engines.sam2.prompts import prompts_from_mask
from surgseg.engines.sam2.stream import StreamingSAM2

SIZE = 128
REPO = Path(__file__).resolve().parents[2]
ENGINE_USERS = ("engines/sam2/tracker.py", "engines/sam2/async_prior.py", "engines/sam2/worker_process.py",
                "operators/sam2_prior.py")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_sam2_model(ModelConfig(image_size=SIZE))


def engine_on(model: torch.nn.Module, num_classes: int = 2, **memory) -> StreamingSAM2:
    """A torch engine on `model` whose backend calls are recorded (`engine.modules`)."""
    config = SAM2Config(num_classes=num_classes, model=ModelConfig(image_size=SIZE), memory=MemoryConfig(**memory))
    return StreamingSAM2(config, model=model, modules=RecordingModules(make_modules(model, config)))


def frames(count: int) -> list[torch.Tensor]:
    """Preprocessed (1,3,S,S) frames: smooth noise with a bright square drifting right."""
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.randn(1, 3, SIZE, SIZE, generator=gen), 5, 1, 2)
    out = []
    for t in range(count):
        image = base.clone()
        image[..., 40:80, 30 + 2 * t : 70 + 2 * t] += 2.0
        out.append(image)
    return out


def square_mask(class_id: int = 1, left: int = 30) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[40:80, left : left + 40] = class_id
    return mask


FRAMES = frames(10)
SEED = prompts_from_mask(square_mask(), 2)


# -------------------------------------------------------------------------------------- max_cond_frames = 1
def test_with_one_conditioning_frame_a_reprompt_is_stored_as_ordinary_memory(model) -> None:
    engine = engine_on(model, every=2, max_cond_frames=1)
    engine.seed(FRAMES[0], SEED)
    engine.step(FRAMES[1])
    out = engine.reprompt(prompts_from_mask(square_mask(left=32), 2))
    engine.step(FRAMES[2])
    engine.step(FRAMES[3])
    state = engine.memory_state()[1]
    assert state["cond_frames"] == [0]
    assert state["memory_frames"] == [1, 2]  # frame 1 is off the every-2 cadence: stored because it was re-prompted
    assert state["memory_scores"][0] == pytest.approx(float(out.object_scores[0]))
    assert state["pointer_frames"] == [1, 2]


def test_without_memories_and_one_conditioning_frame_a_reprompt_keeps_only_its_pointer(model) -> None:
    engine = engine_on(model, every=1, max_memories=0, max_cond_frames=1)
    engine.seed(FRAMES[0], SEED)
    engine.step(FRAMES[1])
    engine.reprompt(prompts_from_mask(square_mask(left=32), 2))
    engine.step(FRAMES[2])
    state = engine.memory_state()[1]
    assert (state["cond_frames"], state["memory_frames"], state["pointer_frames"]) == ([0], [], [1])


# -------------------------------------------------------------------------------------- a re-prompt starts a class
def test_a_reprompt_of_a_class_not_tracked_yet_starts_its_bank_on_that_frame(model) -> None:
    engine = engine_on(model, num_classes=3, every=1)
    engine.seed(FRAMES[0], prompts_from_mask(square_mask(1), 3))
    engine.step(FRAMES[1])
    before = engine.step(FRAMES[2])
    assert before.absent == (False, True) and bool((before.logits[1] <= -1000).all())
    second = prompts_from_mask(square_mask(2, left=80), 3)
    out = engine.reprompt(second)
    assert out.absent == (False, False)
    assert torch.equal(out.logits[0], before.logits[0])  # class 1 untouched
    fresh = engine.image_logits(FRAMES[2], second).logits[1]
    assert float((out.logits[1] - fresh).abs().max()) < 1e-5  # class 2 starts like a seed: no memory behind it
    engine.step(FRAMES[3])
    state = engine.memory_state()
    assert (state[1]["cond_frames"], state[1]["memory_frames"]) == ([0], [1, 2])
    assert (state[2]["cond_frames"], state[2]["memory_frames"], state[2]["pending_frame"]) == ([2], [], 3)


# -------------------------------------------------------------------------------------- condition_on_mask errors
@pytest.mark.parametrize(("mask", "error"), [
    (np.zeros((SIZE, SIZE, 1), np.uint8), r"mask: expected HxW class ids, got shape \(128, 128, 1\)"),
    (square_mask(3), "mask: class id 3 >= num_classes 3"),
])
def test_condition_on_mask_refuses_a_bad_mask_and_leaves_the_bank_alone(model, mask, error) -> None:
    engine = engine_on(model, num_classes=3)
    engine.seed(FRAMES[0], prompts_from_mask(square_mask(1), 3))
    before = engine.memory_state()
    with pytest.raises(InputError, match=error):
        engine.condition_on_mask(mask)
    assert engine.memory_state() == before


def test_condition_on_mask_before_a_seed_is_a_usage_error(model) -> None:
    with pytest.raises(RuntimeError, match="seed"):
        engine_on(model).condition_on_mask(square_mask())


# -------------------------------------------------------------------------------------- max_memories = 0
def test_without_memories_only_conditioning_frames_and_a_bounded_pointer_window_are_kept(model) -> None:
    engine = engine_on(model, every=1, max_memories=0, max_obj_ptrs=4)
    engine.seed(FRAMES[0], SEED)
    states, stored = [], []
    for frame in FRAMES[1:8]:
        engine.step(frame)
        states.append(engine.memory_state()[1])
        stored.append(engine.stored_entries())
    assert all(s["memory_frames"] == [] and s["cond_frames"] == [0] for s in states)
    assert states[-1]["pointer_frames"] == [4, 5, 6]  # the last max_obj_ptrs - 1 frames
    assert stored == [1, 2, 3, 4, 4, 4, 4]
    assert len(engine.modules.arguments("encode_memory")) == 1  # the seed's, never a tracked frame's


# -------------------------------------------------------------------------------------- more than six memories
@pytest.fixture(scope="module")
def six_and_eight(model) -> tuple[list, list, StreamingSAM2]:
    """Logits of every frame with N=6 and N=8 ordinary memories (K=1), and the N=8 engine."""
    runs = []
    for n in (6, 8):
        engine = engine_on(model, every=1, max_memories=n)
        outs = [engine.seed(FRAMES[0], SEED).logits]
        outs += [engine.step(frame).logits for frame in FRAMES[1:]]
        runs.append((outs, engine))
    return runs[0][0], runs[1][0], runs[1][1]


def test_eight_memories_are_kept_where_six_would_be_pruned(six_and_eight) -> None:
    _, _, engine = six_and_eight
    assert engine.memory_state()[1]["memory_frames"] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_the_seventh_memory_changes_the_logits_against_six(six_and_eight) -> None:
    six, eight, _ = six_and_eight
    assert all(torch.equal(a, b) for a, b in zip(six[:8], eight[:8]))  # up to frame 7 both banks hold frames 1-6
    # random weights: memory moves these logits (|logit| <= 0.26) by ~5e-4; bitwise equal above, so it is the 7th
    assert float((six[8] - eight[8]).abs().max()) > 1e-4
    assert float((six[9] - eight[9]).abs().max()) > 1e-4


def test_memories_beyond_six_reuse_the_oldest_temporal_slot(six_and_eight, model) -> None:
    """Frame 9 reads the seed and 8 memories: their temporal encodings are SAM 2's slots 6 (conditioning) and
    5, 5, 5, 4, 3, 2, 1, 0 (oldest to newest memory)."""
    _, _, engine = six_and_eight
    call = engine.modules.arguments("memory_attention")[-1]
    tokens = (SIZE // 16) ** 2
    entries = call["memory_pos"][: 9 * tokens, 0].reshape(9, tokens, -1)
    slots = model.maskmem_tpos_enc.detach().reshape(model.num_maskmem, -1)
    relative = entries - entries[-1]  # the shared spatial encoding cancels; newest memory is slot 0
    found = [int(torch.cdist(r.mean(0, keepdim=True), slots - slots[0]).argmin()) for r in relative]
    assert found == [6, 5, 5, 5, 4, 3, 2, 1, 0]


# -------------------------------------------------------------------------------------- the test double
def public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_the_double_has_the_engines_public_methods_with_the_same_signatures(model) -> None:
    real = engine_on(model)
    double = FakeStreamingSAM2()
    interface = public(double) - set(CONTROLS)
    assert interface <= public(real), f"the double has {interface - public(real)} that StreamingSAM2 lacks"
    for name in sorted(interface):
        ours, theirs = inspect.getattr_static(double, name), inspect.getattr_static(real, name)
        assert type(ours) is type(theirs), name
        if inspect.isfunction(ours):
            assert inspect.signature(ours) == inspect.signature(theirs), name
    assert double.device == real.device and isinstance(double.config, SAM2Config)


def is_engine(node: ast.expr) -> bool:
    """`engine` or `<anything>.engine`."""
    return (isinstance(node, ast.Name) and node.id == "engine") or (isinstance(node, ast.Attribute)
                                                                     and node.attr == "engine")


def test_the_double_covers_everything_the_tracker_and_the_operator_call_on_the_engine() -> None:
    used = set()
    for path in ENGINE_USERS:
        tree = ast.parse((REPO / path).read_text())
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and is_engine(node.value)}
    assert used == {"config", "image_size", "device", "seed", "step", "reprompt", "condition_on_mask", "forget",
                    "memory_state"}
    assert used <= public(FakeStreamingSAM2()) - set(CONTROLS)


def test_the_double_reports_tracked_classes_present_unless_marked_absent() -> None:
    double = FakeStreamingSAM2(image_size=32)
    seeded = double.seed(None, prompts_from_mask(square_mask(1), 3))
    assert seeded.absent == (False, True) and seeded.logits.shape == (2, 8, 8)
    assert float(seeded.logits[0].min()) == 50.0 and float(seeded.logits[1].max()) == -1024.0
    double.absent = {1}
    assert double.step(None).absent == (True, True) and double.frame_index == 1
    assert double.condition_on_mask(square_mask(2)).absent == (True, False)
    assert double.reprompt(prompts_from_mask(square_mask(1), 3)).object_scores.tolist() == [1.0, 1.0]
    assert double.memory_state()[2]["cond_frames"] == [1]
    assert double.calls == ["seed", "step", "condition_on_mask", "reprompt"]
