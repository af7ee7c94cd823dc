"""Stale and wrong SAM 2 priors: what they cost the refiner, and what flow warping wins back (issue 14).

For frame t of a sequence the prior is the simulated SAM 2-like prior *made on frame t−k* (one fixed-seed prior per
frame, whatever t asks for it), letterboxed to the refiner's input, then used as is (`warp: none`) or flow-warped
from frame t−k's model input to frame t's (`warp: flow`: `surgseg.engines.motion.PriorWarper`, DIS). The refined
mask is scored against frame t's truth at the model resolution (Dice of the foreground, 1 when both are empty).
Also scored: an all-zero (empty) prior, and wrong priors: the truth moved by half the frame on both axes ("shift",
the issue's case), another sequence's object at the same time ("object") and random-weight SAM 2 blotches
("noise"). Only frames t ≥ the largest age count, so every condition scores the same frames. Every refiner is
scored twice in the same run: its prior as is (gate off) and through the Refiner operator's prior gate
(`surgseg.engines.prior_gate`, default settings), which drops or down-weights a prior the image contradicts.

Data: synthetic clips with a long fast-motion stretch, refined by the demo refiner (`out/demo/refiner` from
`surgseg demo`); and, when ../shared/data holds it, the CVC-ClinicDB test sequences of `benchmarks.refiner_cvc`'s
split (a sequence there is a run of picked frames, so k frames back can be far in time): the priors alone, and with
`--cvc-minutes` > 0 refined by two refiners trained here like `benchmarks.refiner_cvc` within that budget, with the
issue-14 stale/wrong prior mix and without it (cached under --work; nothing of the data enters the repo). On the
shared 2-core machine 5 minutes gave 23 optimiser steps (refiner_cvc takes 1,845 in 17 idle minutes), so the
default skips them. Also times flow + warp at 128×160.

    .venv/bin/python -m benchmarks.stale_prior                  # ClinicDB: the priors alone
    .venv/bin/python -m benchmarks.stale_prior --cvc-minutes 8  # and two ClinicDB refiners (idle machine)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import write_result
from surgseg.engines.atomic import atomic_write_json
from surgseg.app.demo import PRIOR_MIX
from surgseg.engines.letterbox import letterbox
from surgseg.engines.metrics import MetricAccumulator
from surgseg.engines.motion import PriorWarper
from surgseg.engines.preprocess import PAD_LOGIT, mask_to_model, model_input
from surgseg.engines.prior_gate import PriorGateConfig, refine_gated
from surgseg.training.prior_simulator import PriorSimSettings, simulate_prior, wrong_prior

log = logging.getLogger("stale_prior")

AGES = (0, 2, 4, 8)
WRONG = ("shift", "object", "noise")
SEED = 1234
CVC_MIX = {"stale_prob": 0.35, "stale_max_age": 8, "stale_warp_prob": 0.5, "wrong_prob": 0.25,
           "wrong_mix": [0.3, 0.2, 0.5]}  # ClinicDB refiners keep the default prior dropout (0.1): fewer wrong ones
Refine = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (1,3,h,w) image, (C-1,h,w) prior → (1,C,h,w) logits


@dataclass
class Sequence:
    """One sequence at the model resolution, with each frame's own simulated prior (made on that frame)."""

    name: str
    images: list[np.ndarray]  # (1, 3, h, w) normalised model inputs
    masks: list[np.ndarray]  # (h, w) class ids
    priors: list[np.ndarray]  # (C-1, h, w) logits
    source_masks: list[np.ndarray]
    fast: list[bool]


def make_sequence(name: str, frames: list[np.ndarray], masks: list[np.ndarray], size: tuple[int, int],
                  fast: list[bool] | None = None) -> Sequence:
    """Model inputs, model-size masks and per-frame simulated priors (seeded by sequence and frame)."""
    seq_seed = zlib.crc32(name.encode())
    priors = [to_model_prior(simulate_prior(m, 2, np.random.default_rng([SEED, seq_seed, t])), size)
              for t, m in enumerate(masks)]
    return Sequence(name, [model_input(f, size)[0] for f in frames], [mask_to_model(m, size) for m in masks], priors,
                    masks, fast or [False] * len(frames))


def to_model_prior(prior: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C-1, H, W) source-resolution logits letterboxed to the model size (padding: confident background)."""
    boxed, _ = letterbox(np.ascontiguousarray(prior.transpose(1, 2, 0)), size, pad_value=PAD_LOGIT)
    return np.ascontiguousarray(boxed.reshape(*size, -1).transpose(2, 0, 1))


def conditions(ages: tuple[int, ...]) -> list[str]:
    names = ["k=0"] + [f"k={k} {warp}" for k in ages if k > 0 for warp in ("none", "flow")]
    return names + ["empty"] + [f"wrong {kind}" for kind in WRONG]


def condition_prior(name: str, seq: Sequence, others: list[Sequence], t: int, warper: PriorWarper,
                    size: tuple[int, int]) -> np.ndarray:
    """The prior frame t of `seq` gets under condition `name`."""
    if name == "empty":
        return np.zeros_like(seq.priors[t])
    if name.startswith("wrong"):
        kind = name.split()[1]
        other = others[0].source_masks[min(t, len(others[0].source_masks) - 1)] if others else None
        settings = PriorSimSettings(wrong_shift=(0.5, 0.5))
        rng = np.random.default_rng([SEED, 7, zlib.crc32(seq.name.encode()), t])
        return to_model_prior(wrong_prior(kind, seq.source_masks[t], 2, rng, settings, other), size)
    k = int(name.split()[0][2:])
    stale = seq.priors[t - k]
    return warper.warp(stale, seq.images[t - k], seq.images[t]) if name.endswith("flow") else stale


def score(refine: Refine | None, sequences: list[Sequence], ages: tuple[int, ...], size: tuple[int, int],
          warper: PriorWarper, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per condition: refined and prior-alone Dice over all scored frames, over frames whose truth holds the object
    (an empty-truth frame scores 1 or 0, so a few stray pixels there move the mean), and over fast-motion frames.
    Without a refiner, the prior alone. `only`: these conditions (all when empty)."""
    start = max(ages)
    results: dict[str, Any] = {}
    for name in [c for c in conditions(ages) if not only or c in only]:
        refined, alone, present, fast = (MetricAccumulator(2) for _ in range(4))
        for s, seq in enumerate(sequences):
            others = sequences[s + 1:] + sequences[:s]
            for t in range(start, len(seq.images)):
                prior = condition_prior(name, seq, others, t, warper, size)
                alone.update((prior[0] > 0).astype(np.uint8), seq.masks[t], seq.name)
                if refine is None:
                    continue
                pred = refine(seq.images[t], prior)[0].argmax(axis=0).astype(np.uint8)
                refined.update(pred, seq.masks[t], seq.name)
                if seq.masks[t].any():
                    present.update(pred, seq.masks[t], seq.name)
                if seq.fast[t]:
                    fast.update(pred, seq.masks[t], seq.name)
        results[name] = {"prior_dice": alone.summary()["mean_dice"], "frames": alone.frames}
        if refine is not None:
            results[name] |= {"refined_dice": refined.summary()["mean_dice"],
                              "object_frames_refined_dice": present.summary()["mean_dice"],
                              "object_frames": present.frames}
        if fast.frames:
            results[name] |= {"fast_motion_refined_dice": fast.summary()["mean_dice"],
                              "fast_motion_frames": fast.frames}
        log.info("%-14s %s", name, "  ".join(f"{k} {v:.3f}" for k, v in results[name].items() if "dice" in k))
    return results


# ----------------------------------------------------------------------------------------------------- synthetic
def synthetic_sequences(clips: int, frames: int, size: tuple[int, int]) -> list[Sequence]:
    """Clips the demo refiner never saw, each with fast motion over its middle half."""
    from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig

    out = []
    for c in range(clips):
        clip = SyntheticClip(SyntheticClipConfig(size=(320, 256), frames=frames, num_classes=2, seed=9100 + c,
                                                 fast_motion=((frames // 4, 3 * frames // 4),)))
        rendered = list(clip)
        out.append(make_sequence(f"synthetic_{c}", [f for f, _, _ in rendered], [m for _, m, _ in rendered], size,
                                 ["fast_motion" in tags for _, _, tags in rendered]))
    return out


def onnx_refiner(folder: Path) -> tuple[Refine, tuple[int, int]]:
    from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig

    runtime = RefinerRuntime(folder, RuntimeConfig(backend="onnxruntime", device="cpu", threads=2))

    def refine(image: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return runtime.run(image, prior[None])

    return refine, tuple(runtime.artifact.input_size)


def gated(refine: Refine, config: PriorGateConfig) -> Refine:
    """`refine` behind the Refiner operator's prior gate."""

    def run(image: np.ndarray, prior: np.ndarray) -> np.ndarray:
        logits, _ = refine_gated(lambda i, p: refine(i, p[0]), image, prior[None], np.zeros_like(prior)[None], config)
        return logits

    return run


# ------------------------------------------------------------------------------------------------------ ClinicDB
def clinicdb_refiner(data: Path, work: Path, mix: dict[str, Any], minutes: float, epochs: int,
                     threads: int) -> tuple[Refine, dict[str, Any]]:
    """A refiner trained like benchmarks.refiner_cvc with the prior mix `mix`, cached in `work`."""
    import torch

    from benchmarks.refiner_cvc import PRIOR_SEED, write_clinicdb_index
    from surgseg.training.refiner_net import load_refiner
    from surgseg.training.train import config_from_dict, train

    index = work / "index.jsonl"
    write_clinicdb_index(data, index)
    checkpoint, summary_file = work / "run" / "best.pt", work / "train_summary.json"
    if checkpoint.is_file() and summary_file.is_file():
        summary = {**json.loads(summary_file.read_text()), "cached": True}
    else:
        config = config_from_dict({
            "out_dir": str(work / "run"), "seed": PRIOR_SEED, "threads": threads, "vis_count": 0,
            "data": {"index": str(index), "classes": ["background", "polyp"], "input_size": [144, 192],
                     "prior_sim": mix},
            "model": {"size": "small"},
            "optim": {"epochs": epochs, "max_minutes": minutes, "lr": 2e-3, "batch_size": 4, "accumulate": 2},
        })
        result = train(config)
        checkpoint = Path(result["checkpoint"])
        summary = {k: result[k] for k in ("epochs", "steps", "elapsed_s", "best_val_mean_dice")}
        atomic_write_json(summary_file, summary)
        summary["cached"] = False
    model, _ = load_refiner(checkpoint)

    @torch.no_grad()
    def refine(image: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(image), torch.from_numpy(prior)[None]).numpy()

    return refine, summary


def clinicdb_sequences(index: Path, size: tuple[int, int]) -> list[Sequence]:
    """The test split's sequences in frame order."""
    from surgseg.training.refiner_dataset import read_image, read_mask, read_samples

    by_video: dict[str, list] = {}
    for sample in read_samples(index):
        if sample.split == "test":
            by_video.setdefault(sample.video_id, []).append(sample)
    out = []
    for video, samples in sorted(by_video.items()):
        samples.sort(key=lambda s: s.frame_id)
        out.append(make_sequence(video, [read_image(s.image_path) for s in samples],
                                 [read_mask(s.mask_path, 2) for s in samples], size))
    return out


# --------------------------------------------------------------------------------------------------------- timing
def time_flow(sequence: Sequence, calls: int) -> dict[str, Any]:
    """Flow + warp from frame t−4 to t (model inputs, model-size prior), per DIS preset and Farneback, on one OpenCV
    thread: p50/p99 of wall time and of the thread's CPU time (the cost; wall time also holds waits for the CPU
    when other processes load the machine)."""
    import os

    out: dict[str, Any] = {"opencv_threads": 1, "load_average_1min": os.getloadavg()[0]}
    warpers = {"dis_medium": PriorWarper("dis", "medium"), "dis_fast": PriorWarper("dis", "fast"),
               "dis_ultrafast": PriorWarper("dis", "ultrafast"), "farneback": PriorWarper("farneback")}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for label, warper in warpers.items():
            wall, cpu = [], []
            n = len(sequence.images)
            for i in range(calls):
                t = 4 + i % (n - 4)
                begin, begin_cpu = time.perf_counter(), time.thread_time()
                warper.warp(sequence.priors[t - 4], sequence.images[t - 4], sequence.images[t])
                cpu.append((time.thread_time() - begin_cpu) * 1e3)
                wall.append((time.perf_counter() - begin) * 1e3)
            out[label] = {"cpu_p50_ms": float(np.percentile(cpu, 50)), "cpu_p99_ms": float(np.percentile(cpu, 99)),
                          "wall_p50_ms": float(np.percentile(wall, 50)), "wall_p99_ms": float(np.percentile(wall, 99)),
                          "calls": calls}
            log.info("flow + warp %s: CPU p50 %.2f ms, wall p50 %.2f ms", label, out[label]["cpu_p50_ms"],
                     out[label]["wall_p50_ms"])
    finally:
        cv2.setNumThreads(threads)
    return out


def measured_prior_age(name: str = "realtime_cpu") -> int | None:
    """The async prior age (frames, p50, median over the sources) of benchmarks/results/NAME.json's `async` rows
    (no mp4 written), when that file exists."""
    from benchmarks.common import RESULTS

    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    ages = [row["prior_age_frames_p50"] for row in json.loads(path.read_text()).get("rows", [])
            if row.get("mode") == "async" and isinstance(row.get("prior_age_frames_p50"), int | float)]
    return max(1, int(round(statistics.median(ages)))) if ages else None


# ----------------------------------------------------------------------------------------------------------- main
def goals(results: dict[str, Any], age: int) -> dict[str, Any]:
    """Issue 14's goals on one result set: flow at `age` vs k=0, wrong priors vs the empty prior."""
    k0, empty = results["k=0"]["refined_dice"], results["empty"]["refined_dice"]
    flow = results.get(f"k={age} flow", {}).get("refined_dice")
    worst_wrong = min(results[f"wrong {kind}"]["refined_dice"] for kind in WRONG)
    return {
        "age_frames": age,
        "flow_loss_vs_k0": None if flow is None else k0 - flow,
        "flow_loses_le_0.01": None if flow is None else k0 - flow <= 0.01,
        "wrong_shift_cost_vs_empty": empty - results["wrong shift"]["refined_dice"],
        "worst_wrong_cost_vs_empty": empty - worst_wrong,
        "wrong_costs_le_0.03": empty - worst_wrong <= 0.03,
    }


def score_gated(refine: Refine, label: str, sequences: list[Sequence], ages: tuple[int, ...], size: tuple[int, int],
                warper: PriorWarper, goal_age: int, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """The refiner behind the prior gate (default settings): its results and goals."""
    config = PriorGateConfig()
    results = score(gated(refine, config), sequences, ages, size, warper, only)
    print_ratios(f"{label} + prior gate", results, ages)
    return {"settings": asdict(config), "results": results, "goals": goals(results, goal_age)}


def print_ratios(label: str, results: dict[str, Any], ages: tuple[int, ...]) -> None:
    """One line: stale priors as ratios to k=0, wrong priors as ratios to the empty prior (conditions scored)."""
    dice = {name: r["refined_dice"] for name, r in results.items()}
    k0, empty = dice["k=0"], dice.get("empty")
    parts = [f"{label}: k=0 {k0:.3f}"]
    parts += [f"k={k} {warp} {dice[f'k={k} {warp}'] / k0:.3f}x" for k in ages if k for warp in ("none", "flow")
              if f"k={k} {warp}" in dice]
    if empty is not None:
        parts.append(f"empty {empty:.3f}")
        parts += [f"wrong {kind} {dice[f'wrong {kind}']:.3f} ({dice[f'wrong {kind}'] / max(empty, 1e-9):.2f}x empty)"
                  for kind in WRONG if f"wrong {kind}" in dice]
    print(" | ".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refiner", type=Path, default=Path("out/demo/refiner"), help="demo refiner (synthetic)")
    parser.add_argument("--compare-refiner", action="append", default=[], metavar="LABEL=FOLDER",
                        help="more exported refiners to score on the synthetic clips (e.g. trained without the mix)")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "cvc-clinicdb")
    parser.add_argument("--work", type=Path, default=Path("/tmp/stale_prior"))
    parser.add_argument("--cvc-minutes", type=float, default=0.0,
                        help="training budget of each ClinicDB refiner (0: score the ClinicDB priors alone)")
    parser.add_argument("--cvc-epochs", type=int, default=60)
    parser.add_argument("--cvc-refiners", default="with_mix,without_mix", help="which ClinicDB refiners to score")
    parser.add_argument("--cvc-conditions", default="", help="comma list: score the ClinicDB refiners on these "
                        "conditions only (each takes minutes on a loaded 2-core machine); all when empty")
    parser.add_argument("--age-from", default="realtime_cpu_nice",
                        help="benchmarks/results/NAME.json whose async prior age is scored beside 0, 2, 4, 8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timing-calls", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import torch

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    age = measured_prior_age(args.age_from)
    ages = tuple(sorted(set(AGES) | ({age} if age else set())))
    warper = PriorWarper()
    payload: dict[str, Any] = {"ages": list(ages), "measured_prior_age": age, "seed": SEED,
                               "warp": {"method": warper.method, "preset": "medium"},
                               "prior_simulator": asdict(PriorSimSettings()), "demo_prior_mix": PRIOR_MIX}
    goal_age = age or 4

    if not (args.refiner / "refiner.json").is_file():
        log.error("%s: no demo refiner (run `surgseg demo` first)", args.refiner)
        return 1
    refine, size = onnx_refiner(args.refiner)
    synthetic = synthetic_sequences(args.clips, args.frames, size)
    payload["flow_warp_timing"] = {"size": list(size), **time_flow(synthetic[0], args.timing_calls)}
    results = score(refine, synthetic, ages, size, warper)
    payload["synthetic"] = {"clips": args.clips, "frames": args.frames, "clip_size": [320, 256],
                            "fast_motion": "middle half of each clip", "refiner": str(args.refiner),
                            "results": results, "goals": goals(results, goal_age)}
    print_ratios("synthetic (demo refiner)", results, ages)
    payload["synthetic"]["prior_gate"] = score_gated(refine, "synthetic (demo refiner)", synthetic, ages, size, warper,
                                                     goal_age)
    payload["synthetic"]["compared_refiners"] = {}
    for option in args.compare_refiner:
        label, _, folder = option.rpartition("=")
        other_refine, _ = onnx_refiner(Path(folder))
        other_results = score(other_refine, synthetic, ages, size, warper)
        print_ratios(f"synthetic ({label or folder})", other_results, ages)
        payload["synthetic"]["compared_refiners"][label or folder] = {
            "refiner": folder, "results": other_results, "goals": goals(other_results, goal_age),
            "prior_gate": score_gated(other_refine, f"synthetic ({label or folder})", synthetic, ages, size, warper,
                                      goal_age)}

    if (args.data / "frames.csv").is_file():
        index = args.work / "index.jsonl"
        from benchmarks.refiner_cvc import write_clinicdb_index

        write_clinicdb_index(args.data, index)
        sequences = clinicdb_sequences(index, (144, 192))
        payload["clinicdb"] = {"sequences": {s.name: len(s.images) for s in sequences}, "input_size": [144, 192],
                               "prior_alone": score(None, sequences, ages, (144, 192), warper), "refiners": {}}
        only = tuple(c.strip() for c in args.cvc_conditions.split(",") if c.strip())
        chosen = args.cvc_refiners.split(",") if args.cvc_minutes > 0 else []
        payload["clinicdb"]["scored_conditions"] = list(only) or "all"
        for label, mix in [(label, mix) for label, mix in (("with_mix", CVC_MIX), ("without_mix", {}))
                           if label in chosen]:
            cvc_refine, summary = clinicdb_refiner(args.data, args.work / label, mix, args.cvc_minutes,
                                                   args.cvc_epochs, args.threads)
            cvc = score(cvc_refine, sequences, ages, (144, 192), warper, only)
            print_ratios(f"ClinicDB test ({label.replace('_', ' ')})", cvc, ages)
            payload["clinicdb"]["refiners"][label] = {
                "prior_mix": mix, "training": summary, "results": cvc, "goals": goals(cvc, goal_age),
                "prior_gate": score_gated(cvc_refine, f"ClinicDB test ({label.replace('_', ' ')})", sequences, ages,
                                          (144, 192), warper, goal_age, only)}
    else:
        log.warning("%s: ClinicDB absent, synthetic clips only", args.data)
    payload["total_s"] = round(time.monotonic() - started, 1)
    timing = payload["flow_warp_timing"]["dis_medium"]
    print(f"flow + warp (DIS medium) at {size[0]}x{size[1]}: CPU p50 {timing['cpu_p50_ms']:.2f} ms "
          f"({timing['cpu_p50_ms'] / 3.0:.2f}x the 3 ms goal), wall p50 {timing['wall_p50_ms']:.2f} ms → "
          f"{write_result('stale_prior', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
