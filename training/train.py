"""Train the tiny refiner on (image, prior, GT) triplets; read top to bottom.

config (YAML → TrainConfig) → data (index, priors, augmentation, oversampling) → model, loss, AdamW → loop of
epochs (gradient accumulation, AMP on CUDA, warm-up + cosine lr) → validation of the prior alone and of the refined
output (Dice, IoU, Boundary F per class) → CSV/TensorBoard logs, curves PNG, val_vis/ overlays, checkpoints (last,
best by validation mean Dice) → summary.json. `train(config)` returns the summary; `surgseg train` wraps it.

`train` reads as its steps: `set_up` → `resume` → per epoch `train_one_epoch` then `validate_and_checkpoint` →
`summarise`. A checkpoint holds the weights, the optimiser, the GradScaler and the data order's RNG, so a resumed
run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from surgseg.engines.atomic import atomic_path, atomic_write_json
from surgseg.engines.config import validate_config
from surgseg.engines.device import resolve_device
from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import letterbox_geometry, unletterbox
from surgseg.engines.metrics import MetricAccumulator
from surgseg.training import distributed
from surgseg.training.augment import AugmentSettings, TripletTransform
from surgseg.training.losses import LossWeights, RefinerLoss
from surgseg.training.prior_simulator import PriorSimSettings
from surgseg.training.refiner_dataset import (
    RefinerDataset,
    Sample,
    data_fingerprint,
    oversampling_weights,
    read_samples,
)
from surgseg.training.refiner_net import (
    SIZES,
    RefinerConfig,
    TinyRefiner,
    check_input_size,
    checkpoint_payload,
    count_macs,
    count_parameters,
    refiner_config,
)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------- config
@dataclass
class DataConfig:
    index: str = ""  # JSONL dataset index (rows: image_path, mask_path, split, video_id)
    classes: list[str] = field(default_factory=lambda: ["background", "foreground"])
    input_size: list[int] = field(default_factory=lambda: [288, 384])  # [H, W], multiples of 2**model depth
    train_split: str = "train"
    val_split: str = "val"
    prior_dir: str | None = None  # <prior_dir>/<stem>.npy; None → simulated priors
    prior_sim: dict[str, Any] = field(default_factory=dict)  # overrides of PriorSimSettings
    augment: dict[str, Any] = field(default_factory=dict)  # overrides of AugmentSettings
    oversample: bool = True
    cache_images: bool = True
    fov_crop: bool = True  # cut each frame to its detected field of view, as the shipped graphs' Preproc does

    def __post_init__(self) -> None:
        _require(self, classes=(len(self.classes) >= 2 and len(set(self.classes)) == len(self.classes),
                                "at least 2 distinct names, background first"),
                 input_size=(len(self.input_size) == 2 and min(self.input_size) > 0, "[height, width], both > 0"))
        validate_config(PriorSimSettings, self.prior_sim, "prior_sim")
        validate_config(AugmentSettings, self.augment, "augment")


@dataclass
class ModelConfig:
    size: str = "small"  # nano | small | base
    overrides: dict[str, Any] = field(default_factory=dict)  # RefinerConfig fields, e.g. {width: 12}

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise InputError(f"size: {self.size!r} is not one of {', '.join(SIZES)}")
        if "num_classes" in self.overrides:
            raise InputError("overrides.num_classes: set by data.classes (background included)")
        validate_config(RefinerConfig, {**asdict(SIZES[self.size]), **self.overrides}, "overrides")


@dataclass
class OptimConfig:
    epochs: int = 40
    max_steps: int | None = None  # optimiser steps; stops earlier than `epochs` when set
    max_minutes: float | None = None  # wall-clock budget; the lr schedule follows whichever budget runs out first
    batch_size: int = 4
    accumulate: int = 2  # effective batch = batch_size × accumulate
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the run
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    amp: bool = True  # CUDA only

    def __post_init__(self) -> None:
        _require(self, epochs=(self.epochs >= 1, ">= 1"),
                 max_steps=(self.max_steps is None or self.max_steps >= 1, ">= 1"),
                 max_minutes=(self.max_minutes is None or self.max_minutes > 0, "> 0"),
                 batch_size=(self.batch_size >= 1, ">= 1"), accumulate=(self.accumulate >= 1, ">= 1"),
                 lr=(self.lr > 0, "> 0"), weight_decay=(self.weight_decay >= 0, ">= 0"),
                 warmup=(0 <= self.warmup < 1, "in [0, 1)"), min_lr_ratio=(0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
                 grad_clip=(self.grad_clip > 0, "> 0"))


@dataclass
class TrainConfig:
    out_dir: str = "runs/refiner"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    num_workers: int = 0
    val_every: int = 1  # epochs
    vis_count: int = 8  # val_vis/ overlays written at the best epoch
    resume: bool = False  # continue from <out_dir>/last.pt
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        _require(self, threads=(self.threads is None or self.threads >= 1, ">= 1"),
                 num_workers=(self.num_workers >= 0, ">= 0"), val_every=(self.val_every >= 1, ">= 1"),
                 vis_count=(self.vis_count >= 0, ">= 0"))
        if not self.loss.ce and not self.loss.dice:
            raise InputError("loss: at least one of ce and dice must be > 0")


def _require(config: object, **checks: tuple[bool, str]) -> None:
    """InputError "field: expected <rule>, got <value>" for the first failed check of a config section."""
    for name, (ok, rule) in checks.items():
        if not ok:
            raise InputError(f"{name}: expected {rule}, got {getattr(config, name)!r}")


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a mapping, types checked; InputError naming the key at fault (e.g. `optim.lr`)."""
    return validate_config(TrainConfig, values, "")


def load_config(path: str | Path) -> TrainConfig:
    """TrainConfig from YAML; a relative `data.index`/`data.prior_dir`/`out_dir` is relative to the YAML's folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML ({exc})") from exc
    try:
        config = config_from_dict(values)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    base = path.parent
    config.out_dir = str(base / config.out_dir)
    config.data.index = str(base / config.data.index) if config.data.index else ""
    if config.data.prior_dir:
        config.data.prior_dir = str(base / config.data.prior_dir)
    return config


# ------------------------------------------------------------------------------------------------------- setup
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_samples(config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    samples = read_samples(config.data.index)
    train = [s for s in samples if s.split == config.data.train_split]
    val = [s for s in samples if s.split == config.data.val_split]
    if not train or not val:
        raise InputError(f"{config.data.index}: needs rows with split '{config.data.train_split}' "
                         f"and '{config.data.val_split}' (found {len(train)} and {len(val)})")
    return train, val


def make_datasets(config: TrainConfig, train: list[Sample], val: list[Sample]) -> tuple[RefinerDataset, RefinerDataset]:
    d = config.data
    num_classes = len(d.classes)
    size = (d.input_size[0], d.input_size[1])
    prior_sim = PriorSimSettings(**d.prior_sim)
    augment = AugmentSettings(**d.augment)
    common = {"prior_dir": d.prior_dir, "prior_settings": prior_sim, "cache": d.cache_images, "seed": config.seed,
              "fov_crop": d.fov_crop}
    train_ds = RefinerDataset(train, num_classes, TripletTransform(size, True, augment), fresh_priors=True,
                              pair_next=config.loss.temporal > 0, **common)
    val_ds = RefinerDataset(val, num_classes, TripletTransform(size, False), fresh_priors=False, **common)
    return train_ds, val_ds


def make_loader(config: TrainConfig, dataset: RefinerDataset, context: distributed.DistributedContext,
                generator: torch.Generator) -> torch.utils.data.DataLoader:
    """Batches in an order drawn from `generator`; with `oversample`, frames holding rare classes are drawn more
    often (with replacement). Under DDP each rank draws its own 1/world share of an epoch."""
    weights = oversampling_weights(dataset.class_presence()) if config.data.oversample else None
    common = {"batch_size": config.optim.batch_size, "num_workers": config.num_workers,
              "drop_last": len(dataset) // context.world_size >= config.optim.batch_size}
    if weights is not None and not np.allclose(weights, weights[0]):
        sampler = torch.utils.data.WeightedRandomSampler(weights.tolist(), len(dataset) // context.world_size,
                                                         generator=generator)
    elif context.enabled:
        sampler = torch.utils.data.DistributedSampler(dataset, context.world_size, context.rank, seed=config.seed)
    else:
        return torch.utils.data.DataLoader(dataset, shuffle=True, generator=generator, **common)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, **common)


# ------------------------------------------------------------------------------------------------ lr schedule
def lr_factor(progress: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over the first `warmup` of the run, then cosine decay to `min_ratio`."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    t = min((progress - warmup) / max(1.0 - warmup, 1e-9), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


@dataclass
class Budget:
    """Progress in [0, 1] of the run: the furthest of steps, and wall-clock time when a limit is set."""

    clock: ClassVar[Callable[[], float]] = time.monotonic
    total_steps: int
    max_seconds: float | None
    elapsed_before: float = 0.0
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.elapsed_before + self.clock() - self.started

    def progress(self, step: int) -> float:
        p = step / max(self.total_steps, 1)
        if self.max_seconds:
            p = max(p, self.elapsed() / self.max_seconds)
        return min(p, 1.0)


# ------------------------------------------------------------------------------------------------- validation
def prior_to_mask(prior: np.ndarray) -> np.ndarray:
    """Class ids from (C-1, H, W) logits: the strongest positive foreground channel, else background."""
    padded = np.concatenate([np.zeros((1, *prior.shape[1:]), prior.dtype), prior])
    return padded.argmax(axis=0).astype(np.uint8)


def refine_to_source(model: TinyRefiner, image: torch.Tensor, prior: torch.Tensor, source_hw: tuple[int, int],
                     ) -> np.ndarray:
    """Refined class ids at the source resolution for one letterboxed sample."""
    logits = model(image[None], prior[None])[0].float().cpu().numpy()
    geom = letterbox_geometry(source_hw, tuple(logits.shape[1:]))
    back = unletterbox(np.ascontiguousarray(logits.transpose(1, 2, 0)), geom)
    return back.reshape(*source_hw, -1).argmax(axis=2).astype(np.uint8)


@torch.no_grad()
def evaluate(model: TinyRefiner, dataset: RefinerDataset, classes: list[str], device: torch.device,
             vis_count: int = 0) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """Prior-alone and refined scores at each sample's source resolution, and the first `vis_count` overlays."""
    model.eval()
    prior_acc, refined_acc = MetricAccumulator(len(classes), classes), MetricAccumulator(len(classes), classes)
    overlays = []
    for i in range(len(dataset)):
        image, gt = dataset.load(i)
        item = dataset.item(i, aug_seed=0)
        refined = refine_to_source(model, item["image"].to(device), item["prior"].to(device), gt.shape)
        prior_mask = prior_to_mask(dataset.prior(i, gt))
        video = dataset.samples[i].video_id
        prior_acc.update(prior_mask, gt, video)
        refined_acc.update(refined, gt, video)
        if i < vis_count:
            overlays.append((dataset.samples[i].stem, overlay_panel(image, prior_mask, refined, gt)))
    model.train()
    return {"prior": prior_acc.summary(), "refined": refined_acc.summary()}, overlays


PALETTE = np.array([[0, 0, 0], [0, 255, 0], [255, 64, 64], [64, 128, 255], [255, 200, 0], [200, 0, 255]], np.uint8)


def overlay_panel(image: np.ndarray, prior: np.ndarray, refined: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """image | prior | refined | GT, masks blended over the image (RGB)."""
    def blend(mask: np.ndarray) -> np.ndarray:
        colour = PALETTE[mask % len(PALETTE)]
        alpha = (mask > 0)[..., None] * 0.45
        return (image * (1 - alpha) + colour * alpha).astype(np.uint8)

    return np.concatenate([image, blend(prior), blend(refined), blend(gt)], axis=1)


def write_overlays(folder: Path, overlays: list[tuple[str, np.ndarray]]) -> None:
    for stem, panel in overlays:
        with atomic_path(folder / f"{stem}.png") as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """{"prior_mean_dice": ..., "refined_mean_boundary_f": ...} for logs."""
    return {f"{who}_{key}": value for who in ("prior", "refined") for key, value in result[who].items()
            if key.startswith("mean_")}


# ------------------------------------------------------------------------------------------------ logs, plots
class Logger:
    """Epoch rows to log.csv (and TensorBoard when installed)."""

    def __init__(self, out_dir: Path, keep_rows: bool) -> None:
        self.path = out_dir / "log.csv"
        self.rows: list[dict[str, float]] = []
        if keep_rows and self.path.exists():
            with self.path.open() as f:
                self.rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(self.rows)
        if self.tb is not None:
            for key, value in row.items():
                self.tb.add_scalar(key, value, int(row["epoch"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

    def plot(self, path: Path) -> None:
        """Loss and validation metric curves to a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
        epochs = [r["epoch"] for r in self.rows]
        for key in sorted({k for r in self.rows for k in r if k.startswith("loss")}):
            ax_loss.plot(epochs, [r.get(key, np.nan) for r in self.rows], label=key)
        for colour, metric in enumerate(("dice", "iou", "boundary_f")):
            for who, style in (("prior", "--"), ("refined", "-")):
                key = f"{who}_mean_{metric}"
                ax_metric.plot(epochs, [r.get(key, np.nan) for r in self.rows], style, color=f"C{colour}", label=key)
        ax_loss.set(xlabel="epoch", title="training loss")
        ax_metric.set(xlabel="epoch", title="validation", ylim=(0, 1))
        for ax in (ax_loss, ax_metric):
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------- training
def train(config: TrainConfig) -> dict[str, Any] | None:
    """Run a full training; return the summary (also written to <out_dir>/summary.json); None on DDP ranks > 0."""
    run = set_up(config)
    resume(run)
    for epoch in range(run.epoch + 1, config.optim.epochs):
        if run.progress() >= 1.0:
            break
        row = train_one_epoch(run, epoch)
        finished = run.progress() >= 1.0 or epoch == config.optim.epochs - 1
        validate_and_checkpoint(run, epoch, row, finished)
        if finished:
            break
    return summarise(run)


@dataclass
class Run:
    """Everything a training run carries from one step to the next."""

    config: TrainConfig
    out: Path
    context: distributed.DistributedContext
    device: torch.device
    classes: list[str]
    size: tuple[int, int]
    train_samples: list[Sample]
    val_samples: list[Sample]
    train_ds: RefinerDataset
    val_ds: RefinerDataset
    loader: torch.utils.data.DataLoader
    generator: torch.Generator
    """The data order's RNG (shuffling or oversampling), saved in checkpoints so a resumed run draws the same."""
    fingerprint: str
    refiner: TinyRefiner
    params: int
    macs: int
    criterion: RefinerLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_amp: bool
    budget: Budget
    model: torch.nn.Module | None = None
    """The training forward, DDP-wrapped under torchrun; set by `resume`."""
    logger: Logger | None = None
    epoch: int = -1
    """The last finished epoch."""
    step: int = 0
    best: float = -1.0
    last_metrics: dict[str, Any] = field(default_factory=dict)

    def progress(self) -> float:
        """Run progress, rank 0's under DDP: every rank uses the same lr and stops at the same step."""
        return distributed.from_rank_zero(self.context, self.budget.progress(self.step), self.device)


def set_up(config: TrainConfig) -> Run:
    """Seeds, device, data, model, loss, optimiser and budget of a fresh run."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = distributed.init_distributed()
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.device_for(context, torch.device(resolve_device(config.device)))
    use_amp = config.optim.amp and device.type == "cuda"
    classes, size = list(config.data.classes), (config.data.input_size[0], config.data.input_size[1])

    train_samples, val_samples = split_samples(config)
    train_ds, val_ds = make_datasets(config, train_samples, val_samples)
    generator = torch.Generator().manual_seed(config.seed + context.rank)
    loader = make_loader(config, train_ds, context, generator)

    model_config = refiner_config(config.model.size, num_classes=len(classes), **config.model.overrides)
    check_input_size(model_config, size)
    refiner = TinyRefiner(model_config).to(device)
    params, macs = count_parameters(refiner), count_macs(refiner, size)
    log.info("refiner %s: %.3f M parameters, %.3f GMACs at %dx%d", config.model.size, params / 1e6, macs / 1e9, *size)
    optimizer = torch.optim.AdamW(refiner.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)

    total_steps = max(len(loader) // config.optim.accumulate, 1) * config.optim.epochs
    if config.optim.max_steps:
        total_steps = min(total_steps, config.optim.max_steps)
    max_seconds = config.optim.max_minutes * 60 if config.optim.max_minutes else None
    return Run(config=config, out=out, context=context, device=device, classes=classes, size=size,
               train_samples=train_samples, val_samples=val_samples, train_ds=train_ds, val_ds=val_ds, loader=loader,
               generator=generator, fingerprint=data_fingerprint(train_samples), refiner=refiner, params=params,
               macs=macs, criterion=RefinerLoss(config.loss), optimizer=optimizer,
               scaler=torch.amp.GradScaler("cuda", enabled=use_amp), use_amp=use_amp,
               budget=Budget(total_steps, max_seconds))


def resume(run: Run) -> None:
    """With `resume`, continue from <out_dir>/last.pt (weights, optimiser, GradScaler, data order, counters, clock);
    then wrap the model for training (DDP under torchrun)."""
    path = run.out / "last.pt"
    if run.config.resume and path.is_file():
        state = torch.load(path, map_location=run.device, weights_only=True)
        run.refiner.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):  # empty when saved with AMP off
            run.scaler.load_state_dict(state["scaler"])
        if "data_rng" in state:  # absent from checkpoints written before it was saved
            run.generator.set_state(state["data_rng"].cpu())
        run.epoch, run.step = state["epoch"], state["scheduler"]["step"]
        run.best = state["scheduler"]["best"]
        run.budget.elapsed_before = state["scheduler"]["elapsed_s"]
        log.info("resumed from %s after epoch %d, step %d", path, run.epoch, run.step)
    elif run.config.resume:
        log.warning("resume: %s not found, starting afresh", path)
    run.logger = Logger(run.out, keep_rows=run.epoch >= 0) if run.context.is_main else None
    run.model = distributed.wrap(run.context, TrainingForward(run.refiner), run.device)
    run.model.train()


def train_one_epoch(run: Run, epoch: int) -> dict[str, float]:
    """One pass over the training data (gradient accumulation, AMP, warm-up + cosine lr); the epoch's log row."""
    optim = run.config.optim
    run.train_ds.set_epoch(epoch)
    if isinstance(run.loader.sampler, torch.utils.data.DistributedSampler):
        run.loader.sampler.set_epoch(epoch)
    sums: dict[str, float] = {}
    batches = 0
    bar = tqdm(run.loader, desc=f"epoch {epoch}", leave=False, disable=None if run.context.is_main else True)
    for i, batch in enumerate(bar):
        loss, parts = forward_loss(run.model, run.criterion, batch, run.device, run.use_amp)
        run.scaler.scale(loss / optim.accumulate).backward()
        for key, value in {"loss": float(loss.detach()), **{f"loss_{k}": v for k, v in parts.items()}}.items():
            sums[key] = sums.get(key, 0.0) + value
        batches += 1
        if (i + 1) % optim.accumulate:
            continue
        lr = optim.lr * lr_factor(run.progress(), optim.warmup, optim.min_lr_ratio)
        optimizer_step(run, lr)
        bar.set_postfix(loss=f"{sums['loss'] / batches:.3f}", lr=f"{lr:.2e}")
        if run.progress() >= 1.0:
            break
    run.optimizer.zero_grad(set_to_none=True)  # an incomplete last accumulation is dropped
    return {"epoch": epoch, "step": run.step, "lr": run.optimizer.param_groups[0]["lr"],
            "elapsed_s": run.budget.elapsed(), **{k: v / max(batches, 1) for k, v in sums.items()}}


def optimizer_step(run: Run, lr: float) -> None:
    """Apply the accumulated gradients at `lr`, clipped, through the GradScaler; count the step."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.refiner.parameters(), run.config.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1


def validate_and_checkpoint(run: Run, epoch: int, row: dict[str, float], finished: bool) -> None:
    """Rank 0: validate when due (best.pt and val_vis/ on a new best), log the epoch, save last.pt."""
    run.epoch = epoch
    if not run.context.is_main:
        distributed.barrier(run.context)  # rank 0 validates and saves
        return
    if (epoch + 1) % run.config.val_every == 0 or finished:
        run.last_metrics, overlays = evaluate(run.refiner, run.val_ds, run.classes, run.device, run.config.vis_count)
        row.update(flat_metrics(run.last_metrics))
        if run.last_metrics["refined"]["mean_dice"] > run.best:
            run.best = run.last_metrics["refined"]["mean_dice"]
            save_checkpoint(run, run.out / "best.pt")
            write_overlays(run.out / "val_vis", overlays)
    run.logger.write(row)
    save_checkpoint(run, run.out / "last.pt")
    log.info("epoch %d step %d loss %.4f %s", epoch, run.step, row.get("loss", float("nan")),
             " ".join(f"{k}={v:.3f}" for k, v in flat_metrics(run.last_metrics).items()) if run.last_metrics else "")
    distributed.barrier(run.context)


def save_checkpoint(run: Run, path: Path) -> None:
    """The checkpoint contract (refiner_net.checkpoint_payload) plus what an exact resume needs."""
    payload = checkpoint_payload(
        run.refiner, input_size=run.size, classes=run.classes, data_fingerprint=run.fingerprint,
        val_metrics=run.last_metrics, epoch=run.epoch, optimizer=run.optimizer.state_dict(),
        scheduler={"step": run.step, "best": run.best, "elapsed_s": run.budget.elapsed(),
                   "total_steps": run.budget.total_steps})
    payload["scaler"] = run.scaler.state_dict()
    payload["data_rng"] = run.generator.get_state()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def summarise(run: Run) -> dict[str, Any] | None:
    """Close the process group, plot the curves and write summary.json (rank 0; None on the other ranks)."""
    digests = distributed.weight_digests(run.context, run.refiner)
    run.model = None  # DDP's reducer holds the process group: it must go before the group does (distributed.finish)
    distributed.finish(run.context)
    if not run.context.is_main:
        return None
    run.logger.plot(run.out / "curves.png")
    run.logger.close()
    best_path = run.out / "best.pt"
    best_metrics = torch.load(best_path, map_location="cpu", weights_only=True)["val_metrics"] \
        if best_path.is_file() else {}
    summary = {
        "out_dir": str(run.out),
        "epochs": run.epoch + 1,
        "steps": run.step,
        "elapsed_s": round(run.budget.elapsed(), 1),
        "parameters": run.params,
        "macs": run.macs,
        "input_size": list(run.size),
        "classes": run.classes,
        "data_fingerprint": run.fingerprint,
        "train_samples": len(run.train_samples),
        "val_samples": len(run.val_samples),
        "best_val_mean_dice": run.best,
        "best_val": best_metrics,
        "last_val": run.last_metrics,
        "config": asdict(run.config),
        "checkpoint": str(best_path),
        "distributed": {"world_size": run.context.world_size, "backend": run.context.backend,
                        "ranks_agree": len(set(digests)) == 1, "weight_sha256": digests},
    }
    atomic_write_json(run.out / "summary.json", summary)
    return summary


class TrainingForward(torch.nn.Module):
    """One forward for a training step (segmentation + boundary logits, and the next frame's logits when the
    temporal loss is on), so that DDP sees every use of the weights inside its own forward."""

    def __init__(self, refiner: TinyRefiner) -> None:
        super().__init__()
        self.refiner = refiner

    def forward(self, image: torch.Tensor, prior: torch.Tensor, next_image: torch.Tensor | None = None,
                next_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        logits, edges = self.refiner.forward_with_boundary(image, prior)
        next_logits = None if next_image is None else self.refiner(next_image, next_prior)
        return logits, edges, next_logits


def forward_loss(model: torch.nn.Module, criterion: RefinerLoss, batch: dict[str, Any], device: torch.device,
                 use_amp: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch (plus the temporal term when the batch carries the next frames)."""
    with torch.autocast(device.type, enabled=use_amp):
        nxt = batch.get("next")
        logits, edges, next_logits = model(
            batch["image"].to(device), batch["prior"].to(device),
            None if nxt is None else nxt["image"].to(device), None if nxt is None else nxt["prior"].to(device))
        return criterion(logits, batch["mask"].to(device), edges, next_logits)
