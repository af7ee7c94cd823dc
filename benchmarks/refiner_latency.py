"""Refiner cost next to SAM 2's: ONNX Runtime CPU (2 threads) ms/frame vs one streaming SAM 2 tiny step.

At each refiner input size H×W, SAM 2 runs on the square input that holds the frame at the same scale (side = max(H,
W) rounded up to a multiple of 32, as a letterbox would), with the same thread count. Both models have random weights
(latency does not depend on them); both are timed on already-preprocessed inputs. Goal: refiner / SAM 2 ≤ 0.10.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.common import write_result
from surgseg.engines.sam2.prompts import prompts_from_mask
from surgseg.engines.refiner.artifact import RefinerArtifact
from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig
from surgseg.engines.sam2.config import ModelConfig, SAM2Config
from surgseg.engines.sam2.config import RuntimeConfig as SAM2RuntimeConfig
from surgseg.engines.sam2.stream import StreamingSAM2
from surgseg.engines.video.synthetic import SyntheticClipConfig, synthetic_clip
from surgseg.training.export import ExportConfig, export_refiner
from surgseg.training.refiner_net import TinyRefiner, checkpoint_payload, count_parameters, refiner_config

log = logging.getLogger("refiner_latency")
SIZES = ((288, 384), (512, 512), (736, 1280))
GOAL = 0.10
REFINER_RUNS_PER_STEP = 3


def sam2_side(size: tuple[int, int]) -> int:
    """Side of the square SAM 2 input that holds an H×W frame at the same scale."""
    return 32 * math.ceil(max(size) / 32)


def export_random_refiner(size: tuple[int, int], folder: Path, model_size: str) -> RefinerArtifact:
    """A random-weight refiner exported through `surgseg export` (synthetic check inputs)."""
    torch.manual_seed(0)
    model = TinyRefiner(refiner_config(model_size))
    payload = checkpoint_payload(model, input_size=size, classes=["background", "instrument"],
                                 data_fingerprint="random-init", val_metrics={}, epoch=0)
    torch.save(payload, folder / "refiner.pt")
    export_refiner(ExportConfig(checkpoint=folder / "refiner.pt", out=folder / "models", val_frames=1))
    log.info("refiner %s: %.2f M parameters", model_size, count_parameters(model) / 1e6)
    return RefinerArtifact.load(folder / "models")


def time_ms(call: Callable[[], object], frames: int, warmup: int,
            sync: Callable[[], None] | None = None) -> list[float]:
    """Wall-clock ms of each of `frames` calls after `warmup` untimed ones (`sync` waits for the device)."""
    times = []
    for i in range(warmup + frames):
        started = time.perf_counter()
        call()
        if sync is not None:
            sync()
        if i >= warmup:
            times.append((time.perf_counter() - started) * 1e3)
    return times


def refiner_call(runtime: RefinerRuntime, device: str = "cpu") -> Callable[[], object]:
    """One refiner run on fixed random inputs already where the runtime wants them."""
    artifact = runtime.artifact
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(artifact.image_shape(), generator=generator).to(device)
    prior = torch.randn(artifact.prior_shape(), generator=generator).to(device)
    if device == "cpu":
        image, prior = image.numpy(), prior.numpy()
    return lambda: runtime.run(image, prior)


def sam2_step_call(size: tuple[int, int], side: int, steps: int, device: str = "cpu",
                   precision: str = "fp32") -> Callable[[], object]:
    """`StreamingSAM2.step` over synthetic H×W frames (preprocessed up front), seeded from the first frame's mask;
    each call tracks into the next frame, cycling through `steps` frames."""
    h, w = size
    clip = list(synthetic_clip(SyntheticClipConfig(size=(w, h), frames=steps + 1, num_classes=2,
                                                   presence=((0, steps + 1),))))
    config = SAM2Config(model=ModelConfig(name="tiny", image_size=side), runtime=SAM2RuntimeConfig(precision=precision))
    engine = StreamingSAM2(config, device)
    images = [engine.preprocess(frame) for frame, _, _ in clip]
    engine.seed(images[0], prompts_from_mask(clip[0][1], 2))
    frames = itertools.cycle(images[1:])
    return lambda: engine.step(next(frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3, help="timed SAM 2 steps per size (refiner: 3 runs after each)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-size", default="small", help="refiner size: nano, small, base")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rows = []
    for size in SIZES:
        side = sam2_side(size)
        with tempfile.TemporaryDirectory() as tmp:
            artifact = export_random_refiner(size, Path(tmp), args.model_size)
            config = RuntimeConfig(backend="onnxruntime", device="cpu", threads=args.threads)
            refiner = refiner_call(RefinerRuntime(artifact, config))
            step = sam2_step_call(size, side, args.warmup + args.frames)
            time_ms(refiner, 0, 3)
            time_ms(step, 0, args.warmup)
            refiner_times, sam2_times = [], []
            for _ in range(args.frames):  # interleaved, so that load from other processes hits both alike
                sam2_times += time_ms(step, 1, 0)
                refiner_times += time_ms(refiner, REFINER_RUNS_PER_STEP, 0)
        refiner_ms, sam2_ms = statistics.median(refiner_times), statistics.median(sam2_times)
        ratio = refiner_ms / sam2_ms
        rows.append({"size": list(size), "sam2_side": side, "refiner_ms": refiner_ms, "sam2_step_ms": sam2_ms,
                     "refiner_min_ms": min(refiner_times), "sam2_step_min_ms": min(sam2_times),
                     "ratio": ratio, "ratio_of_minima": min(refiner_times) / min(sam2_times),
                     "meets_goal": ratio <= GOAL})
        log.info("%4dx%-4d refiner %7.1f ms  SAM 2 tiny step @%d %8.1f ms  ratio %.3f (minima %.3f; goal <= %.2f: %s)",
                 *size, refiner_ms, side, sam2_ms, ratio, rows[-1]["ratio_of_minima"], GOAL,
                 "yes" if ratio <= GOAL else "NO")
    path = write_result("refiner_latency", {
        "refiner_backend": f"onnxruntime CPU, {args.threads} threads", "refiner_model": args.model_size,
        "sam2": "sam2.1_hiera_tiny, random weights, fp32 CPU, memory_every=5, max_memories=6",
        "sam2_threads": args.threads, "frames": args.frames, "goal_ratio": GOAL,
        "max_ratio": max(row["ratio"] for row in rows), "meets_goal": all(row["meets_goal"] for row in rows),
        "rows": rows,
    })
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
