"""Train the tiny refiner on (image, prior, GT) triplets; read top to bottom.

config (YAML → TrainConfig) → data (index, priors, augmentation, oversampling) → model, loss, AdamW → loop of
epochs (gradient accumulation, AMP on CUDA, warm-up + cosine lr) → validation of the prior alone and of the refined
output (Dice, IoU, Boundary F per class) → CSV/TensorBoard logs, curves PNG, val_vis/ overlays, checkpoints (last,
best by validation mean Dice) → summary.json. `train(config)` returns the summary; `surgseg train` wraps it.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from surgseg.engines.atomic import atomic_path, atomic_write_json
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


@dataclass
class ModelConfig:
    size: str = "small"  # nano | small | base
    overrides: dict[str, Any] = field(default_factory=dict)  # RefinerConfig fields, e.g. {width: 12}


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


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Dataclass from a dict, naming the offending key on unknown keys and recursing into nested dataclasses."""
    if not isinstance(values, dict):
        raise InputError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise InputError(f"{where}{key}: unknown key (known: {', '.join(known)})")
        default = known[key].default_factory() if known[key].default_factory is not dataclasses.MISSING else None
        kwargs[key] = _build(type(default), value, f"{where}{key}.") if dataclasses.is_dataclass(default) else value
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, values, "")


def load_config(path: str | Path) -> TrainConfig:
    """TrainConfig from YAML; a relative `data.index`/`data.prior_dir`/`out_dir` is relative to the YAML's folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML ({exc})") from exc
    config = config_from_dict(values)
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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise InputError(f"device: {name!r} is not auto, cpu or cuda")
    return torch.device(name)


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
    common = {"prior_dir": d.prior_dir, "prior_settings": prior_sim, "cache": d.cache_images, "seed": config.seed}
    train_ds = RefinerDataset(train, num_classes, TripletTransform(size, True, augment), fresh_priors=True,
                              pair_next=config.loss.temporal > 0, **common)
    val_ds = RefinerDataset(val, num_classes, TripletTransform(size, False), fresh_priors=False, **common)
    return train_ds, val_ds


def make_loader(config: TrainConfig, dataset: RefinerDataset,
                context: distributed.DistributedContext) -> torch.utils.data.DataLoader:
    """Shuffled batches; with `oversample`, frames holding rare classes are drawn more often (with replacement).
    Under DDP each rank draws its own 1/world share of an epoch."""
    generator = torch.Generator().manual_seed(config.seed + context.rank)
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

    total_steps: int
    max_seconds: float | None
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

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
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = distributed.init_distributed()
    main = context.is_main
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.device_for(context, pick_device(config.device))
    use_amp = config.optim.amp and device.type == "cuda"
    classes = list(config.data.classes)
    if not config.loss.ce and not config.loss.dice:
        raise InputError("loss: at least one of ce and dice must be > 0")

    # data
    train_samples, val_samples = split_samples(config)
    train_ds, val_ds = make_datasets(config, train_samples, val_samples)
    loader = make_loader(config, train_ds, context)
    fingerprint = data_fingerprint(train_samples)

    # model, loss, optimiser
    model_config = refiner_config(config.model.size, num_classes=len(classes), **config.model.overrides)
    size = tuple(config.data.input_size)
    check_input_size(model_config, size)
    refiner = TinyRefiner(model_config).to(device)
    params, macs = count_parameters(refiner), count_macs(refiner, size)
    log.info("refiner %s: %.3f M parameters, %.3f GMACs at %dx%d", config.model.size, params / 1e6, macs / 1e9, *size)
    criterion = RefinerLoss(config.loss)
    optimizer = torch.optim.AdamW(refiner.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    steps_per_epoch = max(len(loader) // config.optim.accumulate, 1)
    total_steps = steps_per_epoch * config.optim.epochs
    if config.optim.max_steps:
        total_steps = min(total_steps, config.optim.max_steps)
    max_seconds = config.optim.max_minutes * 60 if config.optim.max_minutes else None

    # resume
    start_epoch, step, best, elapsed_before = 0, 0, -1.0, 0.0
    if config.resume and (out / "last.pt").is_file():
        state = torch.load(out / "last.pt", map_location=device, weights_only=True)
        refiner.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step = state["epoch"] + 1, state["scheduler"]["step"]
        best, elapsed_before = state["scheduler"]["best"], state["scheduler"]["elapsed_s"]
        log.info("resumed from %s at epoch %d, step %d", out / "last.pt", start_epoch, step)
    elif config.resume:
        log.warning("resume: %s not found, starting afresh", out / "last.pt")
    budget = Budget(total_steps, max_seconds, elapsed_before)
    logger = Logger(out, keep_rows=start_epoch > 0) if main else None
    model = distributed.wrap(context, TrainingForward(refiner), device)

    def progress() -> float:
        """Run progress, rank 0's under DDP: every rank uses the same lr and stops at the same step."""
        return distributed.from_rank_zero(context, budget.progress(step), device)

    def save(path: Path, epoch: int, metrics: dict[str, Any]) -> None:
        payload = checkpoint_payload(refiner, input_size=size, classes=classes, data_fingerprint=fingerprint,
                                     val_metrics=metrics, epoch=epoch, optimizer=optimizer.state_dict(),
                                     scheduler={"step": step, "best": best, "elapsed_s": budget.elapsed(),
                                                "total_steps": total_steps})
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    # loop
    model.train()
    epoch, last_metrics = start_epoch - 1, {}
    for epoch in range(start_epoch, config.optim.epochs):
        if progress() >= 1.0:
            break
        train_ds.set_epoch(epoch)
        if isinstance(loader.sampler, torch.utils.data.DistributedSampler):
            loader.sampler.set_epoch(epoch)
        sums: dict[str, float] = {}
        batches = 0
        bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None if main else True)
        for i, batch in enumerate(bar):
            loss, parts = forward_loss(model, criterion, batch, device, use_amp)
            scaler.scale(loss / config.optim.accumulate).backward()
            for key, value in {"loss": float(loss.detach()), **{f"loss_{k}": v for k, v in parts.items()}}.items():
                sums[key] = sums.get(key, 0.0) + value
            batches += 1
            if (i + 1) % config.optim.accumulate:
                continue
            lr = config.optim.lr * lr_factor(progress(), config.optim.warmup, config.optim.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(refiner.parameters(), config.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.set_postfix(loss=f"{sums['loss'] / batches:.3f}", lr=f"{lr:.2e}")
            if progress() >= 1.0:
                break
        optimizer.zero_grad(set_to_none=True)

        row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"], "elapsed_s": budget.elapsed(),
               **{k: v / max(batches, 1) for k, v in sums.items()}}
        finished = progress() >= 1.0 or epoch == config.optim.epochs - 1
        if not main:
            distributed.barrier(context)  # rank 0 validates and saves
            if finished:
                break
            continue
        if (epoch + 1) % config.val_every == 0 or finished:
            last_metrics, overlays = evaluate(refiner, val_ds, classes, device, config.vis_count)
            row.update(flat_metrics(last_metrics))
            if last_metrics["refined"]["mean_dice"] > best:
                best = last_metrics["refined"]["mean_dice"]
                save(out / "best.pt", epoch, last_metrics)
                write_overlays(out / "val_vis", overlays)
        logger.write(row)
        save(out / "last.pt", epoch, last_metrics)
        log.info("epoch %d step %d loss %.4f %s", epoch, step, row.get("loss", float("nan")),
                 " ".join(f"{k}={v:.3f}" for k, v in flat_metrics(last_metrics).items()) if last_metrics else "")
        distributed.barrier(context)
        if finished:
            break

    digests = distributed.weight_digests(context, refiner)
    del model  # DDP's reducer holds the process group: it must go before the group does (see distributed.finish)
    distributed.finish(context)
    if not main:
        return None
    logger.plot(out / "curves.png")
    logger.close()
    best_metrics = torch.load(out / "best.pt", map_location="cpu", weights_only=True)["val_metrics"] \
        if (out / "best.pt").is_file() else {}
    summary = {
        "out_dir": str(out),
        "epochs": epoch + 1,
        "steps": step,
        "elapsed_s": round(budget.elapsed(), 1),
        "parameters": params,
        "macs": macs,
        "input_size": list(size),
        "classes": classes,
        "data_fingerprint": fingerprint,
        "train_samples": len(train_samples),
        "val_samples": len(val_samples),
        "best_val_mean_dice": best,
        "best_val": best_metrics,
        "last_val": last_metrics,
        "config": asdict(config),
        "checkpoint": str(out / "best.pt"),
        "distributed": {"world_size": context.world_size, "backend": context.backend,
                        "ranks_agree": len(set(digests)) == 1, "weight_sha256": digests},
    }
    atomic_write_json(out / "summary.json", summary)
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
