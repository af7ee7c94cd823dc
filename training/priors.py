"""Offline priors for refiner training: per indexed image, SAM 2 in image mode with its saved prompts (the runtime's
own engine and letterbox) or a simulated SAM 2-like prior from the ground truth.

Output: `<out>/<image stem>.npy`, float16 logits (num_classes-1, h, w) at the image's resolution (what
`refiner_dataset` reads), and a summary JSON. Finished files are skipped (resumable); every write is atomic.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.atomic import atomic_save_npy, atomic_write_json
from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

SOURCES = ("sam2", "simulate")


@dataclass(frozen=True)
class PriorsConfig:
    index: Path
    out: Path
    prompts: Path | None = None  # folder of <stem>.prompts.json (needed by source sam2)
    source: str = "sam2"
    model: str = "sam2.1_hiera_tiny"
    checkpoint: Path | None = None
    size: int = 512
    shard: tuple[int, int] = (0, 1)  # (i, n): rows i, i+n, i+2n, ...
    seed: int = 0  # simulate: rng per image = (seed, crc32(stem)); sam2: random-init weights
    device: str = "cpu"
    num_classes: int | None = None  # default: classes.yaml beside the index
    backend: str = "torch"  # torch | onnxruntime | tensorrt (the last two run the modules in `exported`)
    precision: str = "fp32"  # fp32 | int8 (onnxruntime) | fp16 (tensorrt) | bf16/fp16 (torch on CUDA)
    exported: Path | None = None  # folder written by `surgseg export-sam2` for this model and size

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"--source: {self.source!r} is not one of {', '.join(SOURCES)}")
        i, n = self.shard
        if not 0 <= i < n:
            raise InputError(f"--shard: {i}/{n} needs 0 <= i < n")
        if self.source == "sam2" and self.prompts is None:
            raise InputError("--prompts: required with --source sam2 (run `surgseg data prompts` first)")


@dataclass
class _Tally:
    """Counts and per-class coverage over the processed rows."""

    num_classes: int
    counts: Counter = field(default_factory=Counter)
    empty: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    gt_frames: Counter = field(default_factory=Counter)
    prior_frames: Counter = field(default_factory=Counter)
    dice_sum: Counter = field(default_factory=Counter)

    def add(self, stem: str, prior: np.ndarray, mask: np.ndarray) -> None:
        positive = prior > 0
        if not positive.any():
            self.empty.append({"stem": stem, "reason": "no positive logit for any class"
                               if mask.any() else "no foreground in the ground truth"})
        for c in range(1, self.num_classes):
            gt, pr = mask == c, positive[c - 1]
            self.prior_frames[c] += int(pr.any())
            if gt.any():
                self.gt_frames[c] += 1
                self.dice_sum[c] += 2.0 * np.logical_and(gt, pr).sum() / (gt.sum() + pr.sum())

    def coverage(self) -> dict[str, dict[str, Any]]:
        return {
            str(c): {
                "gt_frames": self.gt_frames[c],
                "prior_frames": self.prior_frames[c],
                "mean_dice_vs_gt": round(self.dice_sum[c] / self.gt_frames[c], 4) if self.gt_frames[c] else None,
            }
            for c in range(1, self.num_classes)
        }


def prior_path(out: Path, row: dict[str, Any]) -> Path:
    """Where a row's prior goes: `<out>/<image stem>.npy`."""
    return out / f"{Path(row['image_path']).stem}.npy"


def generate_priors(config: PriorsConfig) -> dict[str, Any]:
    """Write the priors of this shard's rows and its summary JSON; return the summary."""
    from tqdm import tqdm

    from surgseg.training.dataset_index import read_index

    rows = read_index(config.index)
    _check_unique_stems(rows, config.index)
    num_classes = config.num_classes or _num_classes(config.index, rows)
    i, n = config.shard
    mine = rows[i::n]
    make = _SAM2Priors(config) if config.source == "sam2" else _SimulatedPriors(config)
    tally = _Tally(num_classes)
    for row in tqdm(mine, desc=f"priors ({config.source})", unit="image"):
        _process(row, config, num_classes, make, tally)
    summary = {
        "source": config.source,
        "model": make.model_name,
        "checkpoint_sha256": make.checkpoint_sha256,
        "image_size": config.size if config.source == "sam2" else None,
        "backend": f"{config.backend} {config.precision}" if config.source == "sam2" else None,
        "index": str(config.index),
        "shard": f"{i}/{n}",
        "num_classes": num_classes,
        "counts": {"rows": len(mine), **{k: tally.counts[k] for k in ("written", "skipped_existing", "failed")},
                   "empty": len(tally.empty)},
        "class_coverage": tally.coverage(),
        "empty": tally.empty,
        "failed": tally.failed,
    }
    name = "summary.json" if n == 1 else f"summary.shard-{i}-of-{n}.json"
    atomic_write_json(config.out / name, summary)
    return summary


def _process(row: dict[str, Any], config: PriorsConfig, num_classes: int, make, tally: _Tally) -> None:
    from surgseg.training.refiner_dataset import read_image, read_mask

    stem = Path(row["image_path"]).stem
    target = prior_path(config.out, row)
    try:
        mask = read_mask(Path(row["mask_path"]), num_classes)
        if target.is_file():
            prior = np.load(target)
            tally.counts["skipped_existing"] += 1
        else:
            prior = make(stem, read_image(Path(row["image_path"])), mask, num_classes).astype(np.float16)
            atomic_save_npy(target, prior)
            tally.counts["written"] += 1
    except InputError as exc:
        log.warning("%s: %s", stem, exc)
        tally.failed.append({"stem": stem, "reason": str(exc)})
        tally.counts["failed"] += 1
        return
    tally.add(stem, prior.astype(np.float32), mask)


class _Source:
    """A prior maker: (stem, image, mask, num_classes) -> (num_classes-1, h, w) float32 logits."""

    model_name: str | None = None
    checkpoint_sha256: str | None = None


class _SimulatedPriors(_Source):
    def __init__(self, config: PriorsConfig) -> None:
        from surgseg.training.prior_simulator import PriorSimSettings

        self.seed = config.seed
        self.settings = PriorSimSettings()

    def __call__(self, stem: str, image: np.ndarray, mask: np.ndarray, num_classes: int) -> np.ndarray:
        from surgseg.training.prior_simulator import simulate_prior

        rng = np.random.default_rng([self.seed, zlib.crc32(stem.encode())])
        return simulate_prior(mask, num_classes, rng, self.settings)


class _SAM2Priors(_Source):
    def __init__(self, config: PriorsConfig) -> None:
        from surgseg.engines.sam2.config import ModelConfig, RuntimeConfig, SAM2Config, canonical_model_name
        from surgseg.engines.sam2.stream import StreamingSAM2
        from surgseg.engines.sam2.weights import file_sha256

        checkpoint = str(config.checkpoint) if config.checkpoint else None
        model = ModelConfig(name=config.model, image_size=config.size, checkpoint=checkpoint,
                            random_weights_seed=config.seed)
        runtime = RuntimeConfig(backend=config.backend, precision=config.precision,
                                exported=str(config.exported) if config.exported else None)
        self.engine = StreamingSAM2(SAM2Config(model=model, runtime=runtime), config.device)
        self.prompts = config.prompts
        self.model_name = canonical_model_name(config.model)
        self.checkpoint_sha256 = file_sha256(config.checkpoint) if config.checkpoint else "random-init"

    def __call__(self, stem: str, image: np.ndarray, mask: np.ndarray, num_classes: int) -> np.ndarray:
        from surgseg.engines.sam2.prompts import load_prompts

        prompts = load_prompts(self.prompts / f"{stem}.prompts.json")
        if prompts.num_classes != num_classes:
            raise InputError(f"{self.prompts / stem}.prompts.json: num_classes {prompts.num_classes} != {num_classes}")
        if (prompts.height, prompts.width) != image.shape[:2]:
            prompts = prompts.resized(*image.shape[:2])
        low = self.engine.image_logits(image, prompts).logits
        return logits_to_source(low, image.shape[:2])


def logits_to_source(low_res, source_hw: tuple[int, int]) -> np.ndarray:
    """(C, S/4, S/4) letterboxed SAM 2 logits (torch) -> (C, h, w) float32 at the source image's resolution."""
    import cv2
    import torch.nn.functional as F

    from surgseg.engines.letterbox import letterbox_geometry, unletterbox

    size = low_res.shape[-1] * 4
    full = F.interpolate(low_res[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
    geometry = letterbox_geometry(tuple(source_hw), (size, size))
    channels_last = np.ascontiguousarray(full.cpu().numpy().transpose(1, 2, 0))
    source = unletterbox(channels_last, geometry, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(source.reshape(*source_hw, -1).transpose(2, 0, 1))


def _num_classes(index: Path, rows: list[dict[str, Any]]) -> int:
    from surgseg.training.dataset_index import read_classes

    classes = index.parent / "classes.yaml"
    if classes.is_file():
        return len(read_classes(classes))
    top = max((max(row.get("classes_present") or [0]) for row in rows), default=0)
    return max(top, 1) + 1


def _check_unique_stems(rows: list[dict[str, Any]], index: Path) -> None:
    stems = Counter(Path(row["image_path"]).stem for row in rows)
    duplicated = [s for s, k in stems.items() if k > 1]
    if duplicated:
        raise InputError(f"{index}: image stem {duplicated[0]!r} appears {stems[duplicated[0]]} times; "
                         "priors are stored by stem")
