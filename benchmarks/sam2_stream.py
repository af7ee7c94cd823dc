"""Streaming SAM 2 cost and boundedness (tiny, random weights, synthetic clip, inputs preprocessed up front).

1. ms/frame of `StreamingSAM2.step` at each input size for max_memories N and memory cadence K (ratios vs N=0).
2. A long bounded run: once every bank is full (memories, pointers), the median ms of the last `window` frames over
   the first `window` frames must stay <= 1.10 and RSS may grow by at most 50 MiB; stored entries must not grow.

Defaults are the issue's full settings (sizes 256 and 512, N in {0,2,4,6}, K in {1,5,8}, 2,000 frames); pass smaller
counts for a quick look, e.g. `--frames 5 --bounded-frames 300 --window 50`.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import write_result
from surgseg.engines.sam2.prompts import prompts_from_mask
from surgseg.engines.sam2.config import MemoryConfig, ModelConfig, SAM2Config
from surgseg.engines.sam2.model import build_sam2_model
from surgseg.engines.sam2.stream import StreamingSAM2
from surgseg.engines.video.synthetic import SyntheticClipConfig, synthetic_clip

log = logging.getLogger("sam2_stream")
RATIO_GOAL = 1.10
RSS_GOAL_MIB = 50.0
CLIP_FRAMES = 48


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Clip:
    """A synthetic clip preprocessed once, played forwards and backwards forever (no decode cost in timings)."""

    def __init__(self, engine: StreamingSAM2) -> None:
        config = SyntheticClipConfig(size=(320, 256), frames=CLIP_FRAMES, num_classes=2, presence=((0, CLIP_FRAMES),))
        clip = list(synthetic_clip(config))
        self.prompts = prompts_from_mask(clip[0][1], 2)
        self.images = [engine.preprocess(frame) for frame, _, _ in clip]
        self.order = itertools.cycle(list(range(CLIP_FRAMES)) + list(range(CLIP_FRAMES - 2, 0, -1)))

    def next(self) -> torch.Tensor:
        return self.images[next(self.order)]


def timed_steps(engine: StreamingSAM2, clip: Clip, count: int) -> list[float]:
    times = []
    for _ in range(count):
        image = clip.next()
        start = time.perf_counter()
        engine.step(image)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def grid(args: argparse.Namespace) -> list[dict]:
    rows = []
    for size in args.sizes:
        model_config = ModelConfig(name=args.model, image_size=size)
        model = build_sam2_model(model_config, args.device)
        for n, k in itertools.product(args.memories, args.every):
            config = SAM2Config(model=model_config, memory=MemoryConfig(every=k, max_memories=n))
            engine = StreamingSAM2(config, args.device, model=model)
            clip = Clip(engine)
            engine.seed(clip.next(), clip.prompts)
            timed_steps(engine, clip, args.warmup)
            ms = timed_steps(engine, clip, args.frames)
            rows.append({"size": size, "max_memories": n, "memory_every": k, "frames": args.frames,
                         "ms_median": statistics.median(ms), "ms_mean": statistics.fmean(ms)})
            log.info("size %d N=%d K=%d: %.1f ms/frame", size, n, k, rows[-1]["ms_median"])
    for row in rows:
        base = min(r["ms_median"] for r in rows if r["size"] == row["size"] and r["max_memories"] == 0)
        row["ratio_vs_n0"] = row["ms_median"] / base
    return rows


def bounded(args: argparse.Namespace) -> dict:
    memory = MemoryConfig(every=args.bounded_every, max_memories=args.bounded_memories)
    config = SAM2Config(model=ModelConfig(name=args.model, image_size=args.bounded_size), memory=memory)
    engine = StreamingSAM2(config, args.device)
    clip = Clip(engine)
    engine.seed(clip.next(), clip.prompts)
    full_at = max(memory.every * memory.max_memories, memory.max_obj_ptrs) + 1
    if args.bounded_frames < full_at + 2 * args.window:
        raise SystemExit(f"--bounded-frames must be >= {full_at + 2 * args.window} (bank full at {full_at})")
    timed_steps(engine, clip, full_at)
    entries_full, rss_full = engine.stored_entries(), rss_mib()
    ms = timed_steps(engine, clip, args.bounded_frames - full_at)
    first, last = ms[: args.window], ms[-args.window:]
    ratio = statistics.median(last) / statistics.median(first)
    growth = rss_mib() - rss_full
    return {
        "size": args.bounded_size, "memory_every": memory.every, "max_memories": memory.max_memories,
        "frames": args.bounded_frames, "window": args.window, "bank_full_at_frame": full_at,
        "ms_median_first": statistics.median(first), "ms_median_last": statistics.median(last),
        "ratio_last_over_first": ratio, "ratio_ok": ratio <= RATIO_GOAL,
        "rss_mib_at_full": rss_full, "rss_growth_mib": growth, "rss_ok": growth <= RSS_GOAL_MIB,
        "stored_entries_at_full": entries_full, "stored_entries_at_end": engine.stored_entries(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--memories", type=int, nargs="+", default=[0, 2, 4, 6])
    parser.add_argument("--every", type=int, nargs="+", default=[1, 5, 8])
    parser.add_argument("--frames", type=int, default=40, help="timed frames per grid cell")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--bounded-frames", type=int, default=2000)
    parser.add_argument("--bounded-size", type=int, default=256)
    parser.add_argument("--bounded-every", type=int, default=5)
    parser.add_argument("--bounded-memories", type=int, default=6)
    parser.add_argument("--window", type=int, default=100, help="frames in the first/last windows")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--skip-bounded", action="store_true")
    parser.add_argument("--name", default="sam2_stream", help="result name (benchmarks/results/<name>.json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    payload = {"settings": vars(args), "threads": torch.get_num_threads()}
    if not args.skip_grid:
        payload["grid"] = grid(args)
        for row in payload["grid"]:
            print(f"size {row['size']:4d}  N={row['max_memories']}  K={row['memory_every']}  "
                  f"{row['ms_median']:7.1f} ms/frame  x{row['ratio_vs_n0']:.2f} vs N=0")
    if not args.skip_bounded:
        payload["bounded"] = b = bounded(args)
        print(f"bounded run ({b['frames']} frames @ {b['size']} px, K={b['memory_every']}, N={b['max_memories']}): "
              f"median last/first = {b['ratio_last_over_first']:.3f} (goal <= {RATIO_GOAL}), "
              f"RSS growth {b['rss_growth_mib']:.1f} MiB (goal <= {RSS_GOAL_MIB:.0f}), "
              f"stored entries {b['stored_entries_at_full']} -> {b['stored_entries_at_end']}")
    print(f"wrote {write_result(args.name, payload)}")


if __name__ == "__main__":
    main()
