"""The prior gate: the refiner stops following a SAM 2 prior that the image itself contradicts.

The refiner runs once with an all-zero prior ("no prior": its own reading of the image). For each foreground class
the prior claims (at least `min_area` of the frame), its support is the share of the claimed pixels that this
image-only reading does not confidently reject (a pixel is rejected when its class probability is below
1 − `min_confidence`); the worst class counts.
A prior with support ≥ `trust_above` is used as is; one with support ≤ `drop_below` (a confident prior on the wrong
place or object, a stale one the object has left, a blotch, an object on a frame without one) is dropped and the
image-only result is used; in between the two results' logits are blended (weight w for the prior's). A prior that
claims nothing (no prior yet, SAM 2 says the object is absent) is used as is. A refiner that leans on its prior and
is unsure without one (ClinicDB's finds little without) rejects nothing, so its prior is left alone. Cost: a second
refiner pass on frames whose prior claims something (CPU, 128×160 demo refiner: 2.6 → 5.5 ms). The defaults were
chosen on benchmarks/stale_prior.py's synthetic clips and ClinicDB priors (benchmarks/results/stale_prior.json).

Arrays in, arrays out: numpy on CPU, torch (or cupy, through torch) on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from surgseg.engines.array_backend import array_kind, as_torch
from surgseg.engines.errors import InputError

MAX_EXPONENT = 50.0
"""Logit differences are clipped here before exp: e^50 fits float32, the test needs e^ln(1 / (1 − min_confidence))."""


@dataclass
class PriorGateConfig:
    enabled: bool = True
    """Off: the prior always goes to the refiner as is (one refiner pass per frame instead of up to two)."""
    min_confidence: float = 0.99
    """The image-only reading rejects a pixel the prior claims when its class probability is below 1 − this."""
    min_area: float = 0.002
    """A class the prior claims on less than this fraction of the frame is not judged."""
    drop_below: float = 0.3
    """Support (share of the prior's pixels not rejected) at or below which the prior is dropped."""
    trust_above: float = 0.6
    """Support at or above which the prior is used as is."""

    def __post_init__(self) -> None:
        for name in ("min_confidence", "min_area", "drop_below", "trust_above"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name}: {getattr(self, name)} is outside [0, 1]")
        if self.drop_below >= self.trust_above:
            raise InputError(f"drop_below: {self.drop_below} must be below trust_above ({self.trust_above})")


@dataclass(frozen=True)
class GateDecision:
    weight: float
    """1: the prior's result as is; 0: the image-only result; between: a blend of their logits."""
    support: float | None
    """Worst share, over the classes the prior claims, of the claimed pixels the image-only reading does not
    confidently reject; None when the prior claims nothing."""


def refine_gated(refine: Callable[[Any, Any], Any], image: Any, prior: Any, empty: Any,
                 config: PriorGateConfig) -> tuple[Any, GateDecision]:
    """The refiner's logits for `image` with `prior` kept, blended or dropped. `refine(image, prior)` → (1, C, h, w)
    logits; `empty` is the all-zero prior. One refiner pass when the prior claims nothing or is dropped, else two."""
    if not claims(prior, config):  # nothing to judge: the prior as is, one pass
        return refine(image, prior), GateDecision(1.0, None)
    image_only = refine(image, empty)
    decision = decide(prior, image_only, config)
    if decision.weight <= 0.0:
        return image_only, decision
    return blend(refine(image, prior), image_only, decision.weight), decision


def refine_decided(refine: Callable[[Any, Any], Any], image: Any, prior: Any, empty: Any,
                   decision: GateDecision) -> Any:
    """The refiner's logits under a decision already taken on the same SAM 2 result (an asynchronous prior carried
    over several frames): one refiner pass unless the decision blends."""
    if decision.weight >= 1.0:
        return refine(image, prior)
    if decision.weight <= 0.0:
        return refine(image, empty)
    return blend(refine(image, prior), refine(image, empty), decision.weight)


def decide(prior: Any, image_only_logits: Any, config: PriorGateConfig) -> GateDecision:
    """How much of the prior to keep. `prior`: (1, C−1, h, w) logits (positive = inside); `image_only_logits`:
    (1, C, h, w), the refiner's output for an all-zero prior. numpy stays numpy (no torch thread pool for a few
    thousand pixels: on 2 threads that cost 10 ms of CPU a frame), device arrays stay on the device."""
    prior_a, logits = _native(prior), _native(image_only_logits)
    if prior_a.shape[-2:] != logits.shape[-2:] or prior_a.shape[-3] != logits.shape[-3] - 1:
        raise InputError(f"prior_gate: prior {tuple(prior_a.shape)} does not fit logits {tuple(logits.shape)}")
    claimed = prior_a.reshape(prior_a.shape[-3], -1) > 0
    flat = logits.reshape(logits.shape[-3], -1)
    least = max(config.min_area * claimed.shape[1], 1.0)
    supports = []
    for c in range(claimed.shape[0]):
        count = float(claimed[c].sum())
        if count < least:
            continue
        # p(class) < 1 − min_confidence  ⇔  Σ_j exp(x_j − x_class) = 1 / p(class) > 1 / (1 − min_confidence)
        inverse_p = (math.e ** (flat - flat[c + 1]).clip(max=MAX_EXPONENT)).sum(0)
        rejected = float((claimed[c] & (inverse_p > 1.0 / max(1.0 - config.min_confidence, 1e-12))).sum())
        supports.append(1.0 - rejected / count)
    if not supports:
        return GateDecision(1.0, None)
    support = min(supports)
    weight = (support - config.drop_below) / (config.trust_above - config.drop_below)
    return GateDecision(min(1.0, max(0.0, weight)), support)


def claims(prior: Any, config: PriorGateConfig) -> bool:
    """Whether the prior claims at least `min_area` of the frame for some foreground class."""
    prior_a = _native(prior)
    claimed = prior_a.reshape(prior_a.shape[-3], -1) > 0
    return bool((claimed.sum(1) >= max(config.min_area * claimed.shape[1], 1.0)).any())


def _native(array: Any) -> Any:
    """numpy and torch as they are; cupy through torch (the same operators work on both)."""
    return as_torch(array) if array_kind(array) == "cupy" else array


def blend(with_prior: Any, image_only: Any, weight: float) -> Any:
    """weight · with_prior + (1 − weight) · image_only, in the arrays' own kind; either one as is at 1 or 0."""
    if weight >= 1.0:
        return with_prior
    if weight <= 0.0:
        return image_only
    if array_kind(with_prior) != array_kind(image_only):
        raise InputError("prior_gate: logits of two array kinds")
    return with_prior * weight + image_only * (1.0 - weight)
