"""(image, prior, mask) triplets for refiner training, from a JSONL dataset index.

Index rows (read with `dataset_index.read_index`: relative paths are relative to the index's folder) need
`image_path`, `mask_path`, `split`; `video_id` groups frames of one video (taken in file order; None: standalone).
Masks are H×W class ids; for a binary task a {0, 255} mask is read as {0, 1}. Priors come from `<prior_dir>/<image stem>.npy`
((num_classes-1, h, w) logits, float16 or float32, resized to the image when h×w differs) or are simulated from the
mask: fresh for every epoch in training, fixed per sample in validation. With the settings' stale/wrong mix, a
stale prior comes from the frame k earlier in the same video (ordered by `frame_id`, else file order; the video's
first frame when fewer precede), flow-warped at about 160 px wide when the plan says so, and a wrong "object" prior
from a frame of another video (another frame of this one when there is a single video).
With `fov_crop` every frame is cut to the field of view detected on it (`surgseg.engines.fov`), as the runtime's
Preproc does before letterboxing: the mask is background outside the FOV and a prior file is cropped alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from surgseg.engines.errors import InputError
from surgseg.engines.motion import PriorWarper
from surgseg.training.augment import TripletTransform
from surgseg.training.dataset_index import read_index
from surgseg.training.prior_simulator import PriorPlan, PriorSimSettings, draw_plan, simulate_prior, wrong_prior

FLOW_WIDTH = 160  # stale priors are flow-warped with flow computed on images this wide (the refiner's scale)


@dataclass(frozen=True)
class Sample:
    image_path: Path
    mask_path: Path
    split: str
    video_id: str
    frame_id: int | None = None

    @property
    def stem(self) -> str:
        return self.image_path.stem


def read_samples(index_path: str | Path) -> list[Sample]:
    """All rows of a JSONL index as samples (rows without a split get split "")."""
    samples = []
    for row in read_index(index_path):
        image = Path(row["image_path"])
        video = row.get("video_id")
        frame = row.get("frame_id")
        samples.append(Sample(image, Path(row["mask_path"]), str(row.get("split", "")),
                              str(video) if video is not None else f"frame:{image.stem}",
                              int(frame) if frame is not None else None))
    return samples


def read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, num_classes: int) -> np.ndarray:
    """H×W uint8 class ids in [0, num_classes); a binary {0, 255} mask becomes {0, 1}."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise InputError(f"{path}: cannot read mask")
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise InputError(f"{path}: mask must be single-channel 8-bit class ids, got {mask.dtype} {mask.shape}")
    if num_classes == 2 and mask.max() > 1:
        return (mask > 127).astype(np.uint8)
    if int(mask.max()) >= num_classes:
        raise InputError(f"{path}: mask holds class {int(mask.max())} but there are {num_classes} classes")
    return mask


def read_prior(path: Path, num_classes: int, size_hw: tuple[int, int]) -> np.ndarray:
    """(num_classes-1, H, W) float32 logits from a .npy file, resized bilinearly to `size_hw` when needed."""
    if not path.is_file():
        raise InputError(f"{path}: prior file missing")
    prior = np.load(path).astype(np.float32)
    if prior.ndim != 3 or prior.shape[0] != num_classes - 1:
        raise InputError(f"{path}: prior must be ({num_classes - 1}, h, w), got {prior.shape}")
    if prior.shape[1:] != tuple(size_hw):
        resized = cv2.resize(prior.transpose(1, 2, 0), (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR)
        prior = resized.reshape(*size_hw, -1).transpose(2, 0, 1)
    return np.ascontiguousarray(prior)


def data_fingerprint(samples: list[Sample]) -> str:
    """Short hash of the training files (names and sizes), stored with the checkpoint."""
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: str(s.image_path)):
        for path in (s.image_path, s.mask_path):
            digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


class RefinerDataset(torch.utils.data.Dataset):
    """Loads, priors and transforms one sample (optionally paired with the next frame of its video)."""

    def __init__(
        self,
        samples: list[Sample],
        num_classes: int,
        transform: TripletTransform,
        *,
        prior_dir: str | Path | None = None,
        prior_settings: PriorSimSettings | None = None,
        fresh_priors: bool = True,
        pair_next: bool = False,
        cache: bool = True,
        seed: int = 0,
        fov_crop: bool = False,
    ) -> None:
        if not samples:
            raise InputError("dataset: no samples for this split")
        self.samples = samples
        self.num_classes = num_classes
        self.transform = transform
        self.prior_dir = Path(prior_dir) if prior_dir else None
        self.prior_settings = prior_settings or PriorSimSettings()
        self.fresh_priors = fresh_priors
        self.pair_next = pair_next
        self.seed = seed
        self.fov_crop = fov_crop
        self._crops: dict[int, tuple[tuple[int, int], tuple[int, int, int, int]]] = {}
        """Sample → (source H, W) and the FOV box it was cut to."""
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self._next = self._next_in_video()
        self._videos, self._position = self._video_order()
        self._warper: PriorWarper | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Training priors and augmentations are drawn afresh each epoch (reproducibly)."""
        self.epoch = epoch

    def _next_in_video(self) -> list[int]:
        nxt = list(range(len(self.samples)))
        last_of_video: dict[str, int] = {}
        for i in reversed(range(len(self.samples))):
            video = self.samples[i].video_id
            if video in last_of_video:
                nxt[i] = last_of_video[video]
            last_of_video[video] = i
        return nxt

    def _video_order(self) -> tuple[dict[str, list[int]], list[int]]:
        """Sample indices of each video in frame order (frame_id when every frame has one, else file order), and
        each sample's position in its video."""
        videos: dict[str, list[int]] = {}
        for i, s in enumerate(self.samples):
            videos.setdefault(s.video_id, []).append(i)
        position = [0] * len(self.samples)
        for members in videos.values():
            if all(self.samples[i].frame_id is not None for i in members):
                members.sort(key=lambda i: (self.samples[i].frame_id, i))
            for p, i in enumerate(members):
                position[i] = p
        return videos, position

    def earlier(self, i: int, age: int) -> int:
        """The sample `age` frames before sample i in its video (the video's first frame when fewer precede)."""
        members = self._videos[self.samples[i].video_id]
        return members[max(self._position[i] - age, 0)]

    def other_frame(self, i: int, rng: np.random.Generator) -> int:
        """A random sample of another video (of the same video, not i, when there is one video only)."""
        others = [j for v, members in self._videos.items() if v != self.samples[i].video_id for j in members]
        others = others or [j for j in self._videos[self.samples[i].video_id] if j != i] or [i]
        return others[int(rng.integers(len(others)))]

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Source-resolution (image, mask) of sample i."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        image, mask = read_image(s.image_path), read_mask(s.mask_path, self.num_classes)
        if image.shape[:2] != mask.shape:
            raise InputError(f"{s.mask_path}: mask {mask.shape} does not match image {image.shape[:2]}")
        if self.fov_crop:
            image, mask = self._crop(i, image, mask)
        if self._cache is not None:
            self._cache[i] = (image, mask)
        return image, mask

    def _crop(self, i: int, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image and mask cut to the FOV detected on the image (mask background outside it)."""
        from surgseg.engines.fov import crop_to_fov, detect_fov, outside_to_background

        fov = detect_fov(image)
        self._crops[i] = (mask.shape, fov.bbox)
        mask = outside_to_background(mask, fov)
        return np.ascontiguousarray(crop_to_fov(image, fov)), np.ascontiguousarray(crop_to_fov(mask, fov))

    def prior(self, i: int, mask: np.ndarray) -> np.ndarray:
        """Source-resolution prior logits of sample i (from file, or simulated)."""
        if self.prior_dir is not None:
            path = self.prior_dir / f"{self.samples[i].stem}.npy"
            if i not in self._crops:
                return read_prior(path, self.num_classes, mask.shape)
            source_hw, (x0, y0, x1, y1) = self._crops[i]
            return np.ascontiguousarray(read_prior(path, self.num_classes, source_hw)[:, y0:y1, x0:x1])
        key = [self.seed, self.epoch, i] if self.fresh_priors else [self.seed, i]
        rng = np.random.default_rng(key)
        plan = self.plan(i)
        if plan.kind == "fresh":
            return simulate_prior(mask, self.num_classes, rng, self.prior_settings)
        if plan.kind == "stale":
            return self.stale_prior(i, mask, plan, rng)
        other = self.load(self.other_frame(i, rng))[1] if plan.kind == "object" else None
        return wrong_prior(plan.kind, mask, self.num_classes, rng, self.prior_settings, other)

    def plan(self, i: int) -> PriorPlan:
        """Which kind of prior sample i gets (its own generator: the prior's draws do not depend on the mix)."""
        key = [self.seed, self.epoch, i, 2] if self.fresh_priors else [self.seed, i, 2]
        return draw_plan(np.random.default_rng(key), self.prior_settings)

    def stale_prior(self, i: int, mask: np.ndarray, plan: PriorPlan, rng: np.random.Generator) -> np.ndarray:
        """The prior simulated on the frame `plan.age` earlier, flow-warped to frame i when `plan.warp`."""
        j = self.earlier(i, plan.age)
        old_image, old_mask = self.load(j)
        if old_mask.shape != mask.shape:
            old_mask = cv2.resize(old_mask, mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
        prior = simulate_prior(old_mask, self.num_classes, rng, self.prior_settings)
        if not plan.warp or j == i:
            return prior
        if self._warper is None:
            self._warper = PriorWarper()
        return self._warper.warp(prior, _flow_scale(old_image, mask.shape), _flow_scale(self.load(i)[0], mask.shape))

    def item(self, i: int, aug_seed: int) -> dict[str, torch.Tensor]:
        """Transformed sample i as tensors: image (3,H,W), prior (C-1,H,W), mask (H,W) int64."""
        image, mask = self.load(i)
        image_t, prior_t, mask_t = self.transform(image, self.prior(i, mask), mask, np.random.default_rng(aug_seed))
        return {"image": torch.from_numpy(image_t), "prior": torch.from_numpy(prior_t),
                "mask": torch.from_numpy(mask_t.astype(np.int64))}

    def __getitem__(self, i: int) -> dict[str, Any]:
        aug_seed = int(np.random.default_rng([self.seed, self.epoch, i, 1]).integers(2**31))
        item = self.item(i, aug_seed)
        if self.pair_next:  # same augmentation seed → same spatial transform for the neighbouring frame
            item["next"] = self.item(self._next[i], aug_seed)
        return item

    def class_presence(self) -> np.ndarray:
        """(N, num_classes) bool: which classes each sample's mask contains."""
        return np.stack([np.bincount(self.load(i)[1].ravel(), minlength=self.num_classes)[: self.num_classes] > 0
                         for i in range(len(self))])


def _flow_scale(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """The image at `size_hw`'s aspect, FLOW_WIDTH wide (flow is computed there, then scaled to the prior)."""
    h, w = size_hw
    width = min(FLOW_WIDTH, w)
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def oversampling_weights(presence: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """Per-sample weight max over its classes of 1/frequency (capped), so rare classes are seen more often."""
    frequency = presence.mean(axis=0)
    inverse = np.where(frequency > 0, 1.0 / np.maximum(frequency, 1e-9), 0.0)
    weights = np.minimum((presence * inverse).max(axis=1), cap)
    return weights / weights.sum()
