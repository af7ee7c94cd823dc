"""The prior gate (engines/prior_gate.py): a prior the refiner's image-only reading contradicts is dropped, one it
supports is kept, one it cannot judge is left alone; the Refiner operator reports the decision in `meta`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surgseg.engines.errors import InputError
from surgseg.engines.prior_gate import GateDecision, PriorGateConfig, blend, decide, refine_decided, refine_gated

SIZE = (64, 80)


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(SIZE, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def prior_on(mask: np.ndarray, logit: float = 10.0) -> np.ndarray:
    """(1, 1, h, w) prior logits: `logit` inside the mask, −logit elsewhere."""
    return np.where(mask, logit, -logit).astype(np.float32)[None, None]


def image_only_seeing(mask: np.ndarray, logit: float = 12.0) -> np.ndarray:
    """(1, 2, h, w) refiner logits that are sure of `mask` (foreground) and of the background elsewhere."""
    foreground = np.where(mask, logit, -logit).astype(np.float32)
    return np.stack([-foreground, foreground])[None]


LEFT, RIGHT = box(8, 24, 2, 14), box(8, 24, 26, 38)


def test_a_prior_on_another_place_than_the_image_shows_is_dropped() -> None:
    decision = decide(prior_on(RIGHT), image_only_seeing(LEFT), PriorGateConfig())
    assert decision.weight == 0.0 and decision.support == 0.0


def test_a_prior_on_a_frame_the_image_sees_as_empty_is_dropped() -> None:
    decision = decide(prior_on(RIGHT), image_only_seeing(np.zeros(SIZE, bool)), PriorGateConfig())
    assert decision.weight == 0.0


def test_a_prior_the_image_supports_is_kept() -> None:
    decision = decide(prior_on(LEFT), image_only_seeing(LEFT), PriorGateConfig())
    assert decision.weight == 1.0 and decision.support == 1.0


def test_an_unsure_image_only_reading_leaves_the_prior_alone() -> None:
    unsure = np.zeros((1, 2, *SIZE), np.float32)  # p = 0.5 everywhere: rejects nothing
    assert decide(prior_on(RIGHT), unsure, PriorGateConfig()).weight == 1.0


def test_half_supported_prior_blends_the_two_results() -> None:
    half = box(8, 24, 2, 26)  # 12 of its 24 columns on the object the image shows
    config = PriorGateConfig(drop_below=0.2, trust_above=0.8)
    decision = decide(prior_on(half), image_only_seeing(box(8, 24, 2, 14)), config)
    assert decision.support == pytest.approx(0.5)
    assert decision.weight == pytest.approx(0.5)
    a, b = np.ones((1, 2, *SIZE), np.float32), np.zeros((1, 2, *SIZE), np.float32)
    assert np.allclose(blend(a, b, decision.weight), 0.5)


def test_the_worst_claimed_class_decides() -> None:
    prior = np.concatenate([prior_on(LEFT), prior_on(RIGHT)], axis=1)  # class 1 right, class 2 wrong
    logits = np.zeros((1, 3, *SIZE), np.float32)
    logits[0, 0] = np.where(LEFT, -12, 12)
    logits[0, 1] = np.where(LEFT, 12, -12)
    logits[0, 2] = -12
    decision = decide(prior, logits, PriorGateConfig())
    assert decision.support == 0.0 and decision.weight == 0.0


def test_a_prior_claiming_nothing_costs_one_refiner_pass_and_is_used_as_is() -> None:
    calls = []

    def refine(image, prior):
        calls.append(prior)
        return image_only_seeing(LEFT)

    absent = np.full((1, 1, *SIZE), -1024.0, np.float32)
    logits, decision = refine_gated(refine, None, absent, np.zeros_like(absent), PriorGateConfig())
    assert len(calls) == 1 and calls[0] is absent and decision.weight == 1.0 and decision.support is None


def test_a_dropped_prior_returns_the_image_only_result_without_a_second_pass() -> None:
    calls = []

    def refine(image, prior):
        calls.append(prior)
        return image_only_seeing(LEFT)

    prior = prior_on(RIGHT)
    logits, decision = refine_gated(refine, None, prior, np.zeros_like(prior), PriorGateConfig())
    assert len(calls) == 1 and not calls[0].any() and decision.weight == 0.0
    assert np.array_equal(logits, image_only_seeing(LEFT))


def test_torch_tensors_get_the_same_decision_as_numpy() -> None:
    prior, logits = prior_on(RIGHT), image_only_seeing(box(8, 24, 20, 32))
    on_numpy = decide(prior, logits, PriorGateConfig())
    on_torch = decide(torch.from_numpy(prior), torch.from_numpy(logits), PriorGateConfig())
    assert on_numpy == on_torch and 0.0 < on_numpy.support < 1.0


@pytest.mark.parametrize(("values", "key"), [({"drop_below": 0.7, "trust_above": 0.6}, "prior_gate.drop_below"),
                                             ({"min_confidence": 1.5}, "prior_gate.min_confidence")])
def test_a_bad_gate_setting_names_its_key(values, key) -> None:
    from surgseg.engines.config import validate_config

    with pytest.raises(InputError, match=rf"^operators\.refiner\.{key}: "):
        validate_config(PriorGateConfig, values, "operators.refiner.prior_gate")


def test_a_prior_that_does_not_fit_the_logits_is_refused() -> None:
    with pytest.raises(InputError, match="prior_gate"):
        decide(np.zeros((1, 1, 8, 8), np.float32), image_only_seeing(LEFT), PriorGateConfig())


# ------------------------------------------------------------------------------------------------ the operator
class StubRuntime:
    """Sure of LEFT whatever the prior: the refiner's image-only reading."""

    def __init__(self) -> None:
        self.priors: list[np.ndarray] = []

    def run(self, image, prior):
        self.priors.append(prior)
        return image_only_seeing(LEFT)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    from test_export import export_tiny_refiner

    return export_tiny_refiner(tmp_path_factory.mktemp("refiner"), num_classes=2, size=SIZE).folder


def refiner_with_stub(artifact, gate: dict):
    from surgseg.operators.refiner import Refiner, RefinerOpConfig  # first: it makes holoscan importable
    from holoscan.core import Fragment

    op = Refiner(Fragment(), name="refiner", connected_inputs=frozenset({"image"}),
                 config=RefinerOpConfig(artifact=str(artifact), size=SIZE, prior_gate=PriorGateConfig(**gate)))
    op.runtime = StubRuntime()
    return op


def message_with_prior(prior: np.ndarray) -> dict:
    return {"image": np.zeros((1, 3, *SIZE), np.float32), "prior": prior, "meta": {"frame_index": 3}}


def test_the_refiner_reports_a_dropped_prior_in_meta(artifact) -> None:
    op = refiner_with_stub(artifact, {})
    out = op.process({"image": message_with_prior(prior_on(RIGHT)), "feedback": None})["logits"]
    assert out["meta"]["prior_gate"] == {"weight": 0.0, "support": 0.0}
    assert len(op.runtime.priors) == 1 and not op.runtime.priors[0].any()


def test_the_refiner_with_the_gate_off_passes_the_prior_as_is(artifact) -> None:
    op = refiner_with_stub(artifact, {"enabled": False})
    prior = prior_on(RIGHT)
    out = op.process({"image": message_with_prior(prior), "feedback": None})["logits"]
    assert "prior_gate" not in out["meta"] and op.runtime.priors == [prior]


def async_message(prior: np.ndarray, frame_index: int, age: int) -> dict:
    message = message_with_prior(prior)
    message["meta"] = {"frame_index": frame_index, "prior_age": {"frames": age, "ms": 33.3 * age}}
    return message


def test_an_asynchronous_prior_is_judged_once_and_its_decision_kept_while_it_is_the_same_result(artifact) -> None:
    op = refiner_with_stub(artifact, {})
    prior = prior_on(LEFT)
    for frame, age in ((10, 2), (11, 3), (12, 4)):  # one SAM 2 result, made on frame 8, carried over three frames
        out = op.process({"image": async_message(prior, frame, age), "feedback": None})["logits"]
        assert out["meta"]["prior_gate"]["weight"] == 1.0
    assert len(op.runtime.priors) == 4  # judged on frame 10 (image-only + prior passes), then one pass a frame
    assert [p.any() for p in op.runtime.priors] == [False, True, True, True]


def test_a_new_asynchronous_result_is_judged_again(artifact) -> None:
    op = refiner_with_stub(artifact, {})
    op.process({"image": async_message(prior_on(LEFT), 10, 2), "feedback": None})
    out = op.process({"image": async_message(prior_on(RIGHT), 11, 1), "feedback": None})["logits"]  # made on 10
    assert out["meta"]["prior_gate"] == {"weight": 0.0, "support": 0.0}
    assert len(op.runtime.priors) == 3


def test_a_kept_blend_decision_runs_both_passes_without_judging_again() -> None:
    calls = []

    def refine(image, prior):
        calls.append(prior)
        return image_only_seeing(LEFT)

    prior = prior_on(LEFT)
    refine_decided(refine, None, prior, np.zeros_like(prior), GateDecision(0.5, 0.45))
    assert len(calls) == 2


def test_frames_before_the_first_asynchronous_result_are_judged_each_time(artifact) -> None:
    op = refiner_with_stub(artifact, {})
    for frame in (0, 1):
        message = message_with_prior(prior_on(LEFT))
        message["meta"] = {"frame_index": frame, "prior_age": {"frames": None, "ms": None}}
        op.process({"image": message, "feedback": None})
    assert len(op.runtime.priors) == 4
