"""Simulated SAM 2-like priors from ground truth, for training and benchmarking the refiner without SAM 2.

Per foreground class, the ground-truth region is turned into a signed distance map (pixels, positive inside) and
corrupted the way a box-prompted SAM-family model errs: a global erosion/dilation, a smooth boundary jitter, a small
shift, sometimes a missed part and a false blob; the result becomes logits (slope `logit_gain` per pixel, clipped),
blurred, scaled by a per-frame confidence and lightly noised. Geometric errors scale with the object's equivalent
radius r = sqrt(area/π), so small and large objects are equally hard. Everything draws from the caller's
`np.random.Generator`: the same generator state gives the same prior.

Default settings were fixed before any refiner training, calibrated on the ground truth alone: the thresholded
prior's own mean Dice is 0.78 over every third CVC-ClinicDB frame and 0.778 on the benchmark's test split (target band
0.70–0.85, what box-prompted SAM-family models reach zero-shot on such frames).

Beyond that "fresh" prior, a mix (off by default) gives the refiner the priors an asynchronous SAM 2 hands it:
*stale* priors (simulated from the ground truth of frame t−k of the same video, optionally flow-warped to frame t)
and *wrong* ones (a confident prior on the wrong place: the truth moved by a large offset, another frame's object, or
the blotchy output of a random-weight SAM 2). `draw_plan` picks the kind; the caller, which knows the video's frames,
supplies the neighbour's or the other frame's mask (see `refiner_dataset.RefinerDataset.prior`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from surgseg.engines.errors import InputError

WRONG_KINDS = ("shift", "object", "noise")  # how a wrong prior is wrong (see `wrong_prior`)


@dataclass(frozen=True)
class PriorSimSettings:
    """Error magnitudes; lengths are fractions of the object's equivalent radius r unless named `_px`."""

    offset_std: float = 0.12  # global erosion (<0) / dilation (>0), std of the boundary offset
    jitter_amp: float = 0.18  # std of the smooth boundary displacement field
    jitter_scale: float = 0.6  # correlation length of that field
    shift_std: float = 0.06  # std of the translation, each axis
    miss_prob: float = 0.30  # chance of cutting out a missed part
    miss_size: float = 0.45  # radius of the missed part
    blob_prob: float = 0.20  # chance of a false-positive blob elsewhere
    blob_size: float = 0.30  # radius of the false blob
    min_radius_px: float = 8.0  # floor for r (tiny or empty objects)
    logit_gain: float = 1.0  # logit slope per pixel of signed distance
    logit_max: float = 12.0  # |logit| clip
    confidence_range: tuple[float, float] = (0.5, 1.5)  # per-frame scale of all logits
    blur_sigma_px: float = 1.5  # Gaussian blur of the logits
    noise_std: float = 0.3  # per-pixel logit noise
    stale_prob: float = 0.0  # chance the prior was made on frame t−k of the same video
    stale_min_age: int = 1  # k is drawn uniformly in [stale_min_age, stale_max_age] frames
    stale_max_age: int = 8
    stale_warp_prob: float = 0.0  # chance a stale prior is flow-warped to frame t (engines.motion)
    wrong_prob: float = 0.0  # chance of a confident prior on the wrong place
    wrong_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)  # shares of WRONG_KINDS among wrong priors
    wrong_shift: tuple[float, float] = (0.35, 0.65)  # "shift": the truth moved by this fraction of the frame per axis
    wrong_confidence: tuple[float, float] = (1.0, 1.5)  # per-frame logit scale of wrong priors

    def __post_init__(self) -> None:
        if not 0 <= self.miss_prob <= 1 or not 0 <= self.blob_prob <= 1:
            raise InputError("prior_sim: miss_prob and blob_prob must lie in [0, 1]")
        if min(self.offset_std, self.jitter_amp, self.shift_std, self.logit_gain, self.logit_max) < 0:
            raise InputError("prior_sim: magnitudes must be non-negative")
        probs = (self.stale_prob, self.stale_warp_prob, self.wrong_prob)
        if min(probs) < 0 or max(probs) > 1 or self.stale_prob + self.wrong_prob > 1:
            raise InputError("prior_sim: stale_prob, stale_warp_prob and wrong_prob lie in [0, 1], with "
                             "stale_prob + wrong_prob <= 1")
        if not 0 <= self.stale_min_age <= self.stale_max_age:
            raise InputError("prior_sim: need 0 <= stale_min_age <= stale_max_age")
        if len(self.wrong_mix) != len(WRONG_KINDS) or min(self.wrong_mix) < 0 or sum(self.wrong_mix) <= 0:
            raise InputError(f"prior_sim.wrong_mix: {len(WRONG_KINDS)} non-negative shares of {', '.join(WRONG_KINDS)}")
        if not 0 <= self.wrong_shift[0] <= self.wrong_shift[1] <= 1:
            raise InputError("prior_sim.wrong_shift: need 0 <= low <= high <= 1 (fractions of the frame)")


@dataclass(frozen=True)
class PriorPlan:
    """Which prior a sample gets: kind fresh | stale | shift | object | noise; `age` and `warp` for stale ones."""

    kind: str = "fresh"
    age: int = 0
    warp: bool = False


def draw_plan(rng: np.random.Generator, s: PriorSimSettings) -> PriorPlan:
    """The kind of prior for one sample, by the settings' mix (default settings: always fresh)."""
    u = rng.random()
    if u < s.stale_prob:
        age = int(rng.integers(s.stale_min_age, s.stale_max_age + 1))
        return PriorPlan("stale", age, bool(rng.random() < s.stale_warp_prob))
    if u < s.stale_prob + s.wrong_prob:
        shares = np.asarray(s.wrong_mix, np.float64)
        return PriorPlan(WRONG_KINDS[int(rng.choice(len(WRONG_KINDS), p=shares / shares.sum()))])
    return PriorPlan()


def signed_distance(region: np.ndarray) -> np.ndarray:
    """Euclidean distance to the region's boundary in pixels, positive inside, negative outside (float32)."""
    inside = region.astype(np.uint8)
    if not inside.any():
        return np.full(region.shape, -float(max(region.shape)), np.float32)
    if inside.all():
        return np.full(region.shape, float(max(region.shape)), np.float32)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    return (d_in - d_out).astype(np.float32)


def smooth_field(shape: tuple[int, int], correlation_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std random field with structures of about `correlation_px` pixels."""
    h, w = shape
    cell = max(correlation_px, 2.0)
    grid = rng.standard_normal((max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1))).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _disk(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _corrupt_region(region: np.ndarray, rng: np.random.Generator, s: PriorSimSettings) -> np.ndarray:
    """Signed distance of the corrupted region."""
    shape = region.shape
    area = int(region.sum())
    r = max(math.sqrt(area / math.pi), s.min_radius_px)
    sd = signed_distance(region)
    sd += rng.normal(0.0, s.offset_std * r)
    sd += s.jitter_amp * r * smooth_field(shape, s.jitter_scale * r, rng)
    dy, dx = rng.normal(0.0, s.shift_std * r, size=2)
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    sd = cv2.warpAffine(sd, shift, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = sd > 0
    if area and rng.random() < s.miss_prob:
        ys, xs = np.nonzero(region)
        pick = rng.integers(len(ys))
        mask &= ~_disk(shape, (ys[pick], xs[pick]), s.miss_size * r)
    if rng.random() < s.blob_prob:
        centre = (rng.uniform(0, shape[0]), rng.uniform(0, shape[1]))
        mask |= _disk(shape, centre, s.blob_size * r * rng.uniform(0.5, 1.5))
    return signed_distance(mask)


def simulate_prior(
    mask: np.ndarray, num_classes: int, rng: np.random.Generator, settings: PriorSimSettings | None = None
) -> np.ndarray:
    """A SAM 2-like prior for an H×W uint8 class-id mask: (num_classes-1, H, W) float32 logits, positive inside."""
    if mask.ndim != 2:
        raise InputError(f"simulate_prior: mask must be H×W class ids, got shape {mask.shape}")
    if mask.size and int(mask.max()) >= num_classes:
        raise InputError(f"simulate_prior: mask holds class {int(mask.max())} but num_classes={num_classes}")
    s = settings or PriorSimSettings()
    confidence = rng.uniform(*s.confidence_range)
    out = np.empty((num_classes - 1, *mask.shape), np.float32)
    for k in range(1, num_classes):
        sd = _corrupt_region(mask == k, rng, s)
        logits = np.clip(sd * s.logit_gain, -s.logit_max, s.logit_max)
        if s.blur_sigma_px > 0:
            logits = cv2.GaussianBlur(logits, (0, 0), s.blur_sigma_px)
        out[k - 1] = confidence * logits + rng.normal(0.0, s.noise_std, mask.shape).astype(np.float32)
    return out


def shifted_truth(mask: np.ndarray, rng: np.random.Generator, s: PriorSimSettings) -> np.ndarray:
    """The class-id mask moved (with wrap-around) by a large random offset on both axes."""
    h, w = mask.shape
    fy, fx = rng.uniform(*s.wrong_shift, size=2) * rng.choice([-1, 1], size=2)
    return np.roll(mask, (int(round(fy * h)), int(round(fx * w))), axis=(0, 1))


def noise_prior(shape: tuple[int, int], num_classes: int, rng: np.random.Generator,
                s: PriorSimSettings) -> np.ndarray:
    """What a random-weight SAM 2 gives: confident blotches (smooth blobs plus a 16-pixel patch pattern) covering
    5–40 % of the frame, unrelated to the image."""
    h, w = shape
    out = np.empty((num_classes - 1, h, w), np.float32)
    for k in range(num_classes - 1):
        blobs = smooth_field(shape, rng.uniform(0.08, 0.25) * min(h, w), rng)
        patches = rng.standard_normal((max(1, h // 16), max(1, w // 16))).astype(np.float32)
        field = blobs + 0.5 * cv2.resize(patches, (w, h), interpolation=cv2.INTER_NEAREST)
        threshold = np.quantile(field, 1.0 - rng.uniform(0.05, 0.4))
        logits = np.clip((field - threshold) * 8.0, -s.logit_max, s.logit_max)
        out[k] = rng.uniform(*s.wrong_confidence) * logits + rng.normal(0.0, s.noise_std, shape).astype(np.float32)
    return out


def wrong_prior(kind: str, mask: np.ndarray, num_classes: int, rng: np.random.Generator,
                settings: PriorSimSettings | None = None, other_mask: np.ndarray | None = None) -> np.ndarray:
    """A confident prior on the wrong place for the H×W class-id `mask`: kind "shift" (the truth moved by a large
    offset), "object" (`other_mask`, another frame's object; "shift" when it holds none) or "noise"
    (`noise_prior`). A kind that has no object to move falls back to "noise"."""
    if kind not in WRONG_KINDS:
        raise InputError(f"wrong_prior: kind {kind!r} (use one of {', '.join(WRONG_KINDS)})")
    s = settings or PriorSimSettings()
    confident = dataclasses.replace(s, confidence_range=s.wrong_confidence)
    if kind == "object" and other_mask is not None and other_mask.any():
        if other_mask.shape != mask.shape:
            other_mask = cv2.resize(other_mask, mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
        return simulate_prior(other_mask, num_classes, rng, confident)
    if kind in ("shift", "object") and mask.any():
        return simulate_prior(shifted_truth(mask, rng, s), num_classes, rng, confident)
    return noise_prior(mask.shape, num_classes, rng, s)
