"""Score a trained refiner on any labelled dataset index: prior alone vs refined, per class, per video and overall.

The model is a training checkpoint (`.pt`) or an exported artefact (its folder, `refiner.json` or `refiner.onnx`, run
through `engines.refiner.runtime`). Priors are simulated from the ground truth with a fixed seed (`simulate`, the
same priors `surgseg train` validates on), absent (`none`: all-zero logits, the refiner alone; no prior scores), or
read from a folder written by `surgseg priors` (`<dir>/<image stem>.npy`). Every frame is scored at its source
resolution with `engines.metrics` (Dice, IoU, DAVIS Boundary F); the worst frames by refined Dice come back as
image | prior | refined | ground-truth panels for the report.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from surgseg.engines.errors import InputError
from surgseg.engines.metrics import METRICS, MetricAccumulator
from surgseg.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD, model_input
from surgseg.training.augment import TripletTransform, letterbox_triplet
from surgseg.training.prior_simulator import PriorSimSettings
from surgseg.training.refiner_dataset import RefinerDataset, Sample, read_samples
from surgseg.training.refiner_net import load_refiner
from surgseg.training.train import overlay_panel, prior_to_mask, refine_to_source

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth")
PRIOR_MODES = ("simulate", "none")
DEFAULT_SEED = 1234


@dataclass(frozen=True)
class EvaluateConfig:
    model: Path
    """Checkpoint (.pt) or exported artefact (folder, refiner.json or refiner.onnx)."""
    index: Path
    split: str | None = None
    """Rows of this split only (None: every row)."""
    prior: str = "simulate"
    """simulate | none | a folder of `surgseg priors` .npy files."""
    seed: int = DEFAULT_SEED
    prior_sim: dict[str, Any] = field(default_factory=dict)
    """`PriorSimSettings` overrides for simulated priors."""
    worst: int = 8
    backend: str = "auto"
    threads: int = 2
    fov_crop: bool = True
    """Cut each frame to its detected field of view first, as training and the shipped graphs' Preproc do."""

    def __post_init__(self) -> None:
        if self.prior not in PRIOR_MODES and not Path(self.prior).is_dir():
            raise InputError(f"--prior: {self.prior!r} is neither simulate, none nor a folder of prior .npy files")
        if self.worst < 0:
            raise InputError(f"--worst: must be >= 0, got {self.worst}")


@dataclass(frozen=True)
class Predictor:
    """A refiner as `(image (1,3,h,w), prior (1,C-1,h,w)) -> logits (1,C,h,w)` with what it expects."""

    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    classes: list[str]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str
    prior_encoding: str = "logits"


@dataclass
class Evaluation:
    """`result` is JSON-ready; `worst` holds (caption, image | prior | refined | GT panel) of the worst frames."""

    result: dict[str, Any]
    worst: list[tuple[str, np.ndarray]]


def load_predictor(path: Path, backend: str = "auto", threads: int = 2) -> Predictor:
    """A checkpoint through torch, anything else as an exported artefact through the refiner runtime."""
    path = Path(path)
    if path.suffix in CHECKPOINT_SUFFIXES:
        model, meta = load_refiner(path)
        return Predictor(model, list(meta["classes"]), tuple(meta["input_size"]), IMAGENET_MEAN, IMAGENET_STD,
                         "checkpoint")
    from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig

    runtime = RefinerRuntime(path, RuntimeConfig(backend=backend, device="cpu", threads=threads))
    artifact = runtime.artifact

    def run(image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(runtime.run(image.numpy(), prior.numpy()))

    return Predictor(run, list(artifact.classes), artifact.input_size, artifact.mean, artifact.std,
                     f"artefact ({runtime.backend_name})", artifact.prior_encoding)


def select_samples(index: Path, split: str | None) -> list[Sample]:
    samples = read_samples(index)
    if split is not None:
        samples = [s for s in samples if s.split == split]
        if not samples:
            raise InputError(f"{index}: no rows with split {split!r}")
    return samples


def network_inputs(image: np.ndarray, prior: np.ndarray, mask: np.ndarray, p: Predictor,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Letterboxed, normalised image (3,h,w) and prior (C-1,h,w) in the predictor's encoding."""
    x, _ = model_input(image, p.input_size, p.mean, p.std)
    _, prior_chw, _ = letterbox_triplet(image, np.ascontiguousarray(prior.transpose(1, 2, 0)), mask, p.input_size)
    if p.prior_encoding == "probabilities":
        prior_chw = 1.0 / (1.0 + np.exp(-prior_chw))
    return torch.from_numpy(x[0]), torch.from_numpy(prior_chw.astype(np.float32))


def foreground_means(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """One frame's per-class scores → mean over the foreground classes, per metric."""
    return {name: round(float(np.mean(scores[name][1:])), 5) for name in METRICS}


@torch.no_grad()
def evaluate_refiner(config: EvaluateConfig) -> Evaluation:
    """Prior and refined scores over the selected rows, per-frame records, and the worst frames' panels."""
    predictor = load_predictor(config.model, config.backend, config.threads)
    classes, num_classes = predictor.classes, len(predictor.classes)
    samples = select_samples(config.index, config.split)
    prior_dir = Path(config.prior) if config.prior not in PRIOR_MODES else None
    # simulated stale / wrong priors read other frames of the video: keep decoded frames only for them
    dataset = RefinerDataset(samples, num_classes, TripletTransform(predictor.input_size, False), prior_dir=prior_dir,
                             prior_settings=PriorSimSettings(**config.prior_sim), fresh_priors=False,
                             cache=config.prior == "simulate", seed=config.seed, fov_crop=config.fov_crop)
    with_prior = config.prior != "none"
    prior_acc, refined_acc = MetricAccumulator(num_classes, classes), MetricAccumulator(num_classes, classes)
    frames: list[dict[str, Any]] = []
    worst: list[tuple[float, int, np.ndarray, np.ndarray]] = []  # heap whose root is the highest Dice kept
    for i in tqdm(range(len(dataset)), desc="evaluate", unit="frame", leave=False):
        image, gt = dataset.load(i)
        prior = dataset.prior(i, gt) if with_prior else np.zeros((num_classes - 1, *gt.shape), np.float32)
        refined = refine_to_source(predictor.run, *network_inputs(image, prior, gt, predictor), gt.shape)
        sample = samples[i]
        record: dict[str, Any] = {"video": sample.video_id, "stem": sample.stem, "frame_id": sample.frame_id,
                                  "refined": foreground_means(refined_acc.update(refined, gt, sample.video_id))}
        prior_mask = prior_to_mask(prior)
        if with_prior:
            record["prior"] = foreground_means(prior_acc.update(prior_mask, gt, sample.video_id))
        frames.append(record)
        _keep_worst(worst, config.worst, record["refined"]["dice"], i, prior_mask, refined)
    result = {
        "model": {"path": str(config.model), "kind": predictor.kind, "classes": classes,
                  "input_size": list(predictor.input_size)},
        "data": {"index": str(config.index), "split": config.split, "frames": len(samples),
                 "videos": len({s.video_id for s in samples})},
        "prior": {"mode": config.prior if prior_dir is None else "dir", "dir": str(prior_dir) if prior_dir else None,
                  "seed": config.seed if config.prior == "simulate" else None,
                  "settings": asdict(dataset.prior_settings) if config.prior == "simulate" else None},
        "scores": {"refined": refined_acc.summary(), "prior": prior_acc.summary() if with_prior else None},
        "frames": frames,
    }
    refined_dice = result["scores"]["refined"]["mean_dice"]
    log.info("evaluated %d frames of %s: refined mean Dice %.4f%s", len(samples), config.index, refined_dice,
             f", prior alone {result['scores']['prior']['mean_dice']:.4f}" if with_prior else " (no prior)")
    return Evaluation(result, _worst_panels(worst, dataset, frames, with_prior))


def _keep_worst(heap: list, n: int, dice: float, i: int, prior: np.ndarray, refined: np.ndarray) -> None:
    """Keep the n lowest-Dice frames (ties: the earlier frame)."""
    if n == 0:
        return
    entry = (-dice, -i, prior, refined)
    if len(heap) < n:
        heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2]:
        heapq.heapreplace(heap, entry)


def _worst_panels(heap: list, dataset: RefinerDataset, frames: list[dict[str, Any]], with_prior: bool,
                  ) -> list[tuple[str, np.ndarray]]:
    panels = []
    for neg_dice, neg_i, prior, refined in sorted(heap, key=lambda e: (-e[0], -e[1])):
        i = -neg_i
        image, gt = dataset.load(i)
        record = frames[i]
        prior_text = f" · prior Dice {record['prior']['dice']:.3f}" if with_prior else " · no prior"
        caption = f"{record['video']} / {record['stem']}: refined Dice {-neg_dice:.3f}{prior_text}"
        panels.append((caption, overlay_panel(image, prior, refined, gt)))
    return panels
