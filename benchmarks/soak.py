"""Long run through replay_fast.yaml: memory and latency must not grow with the number of frames seen.

A synthetic clip of N frames (random SAM 2 weights, memory cadence 5) runs through the shipped replay_fast graph
with an RSS probe beside the latency report. Pass: RSS growth after warm-up ≤ 50 MiB, median latency of the
last 1,000 frames over the first 1,000 ≤ 1.10, no dropped frames.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.app.graph_spec import read_yaml, validate
from surgseg.app.runtime import run_graph
from surgseg.graphs import graph_path

log = logging.getLogger("soak")
RSS_LIMIT_MIB = 50.0
LATENCY_RATIO_LIMIT = 1.10


def soak_graph(frames: int, image_size: int, refiner_onnx: Path, out: Path, window: int) -> dict[str, Any]:
    """replay_fast with a synthetic source of `frames` frames and an RSS probe."""
    raw = read_yaml(graph_path("replay_fast"))
    model_h, model_w = raw["operators"]["preproc"]["size"]
    raw["device"] = "cpu"
    raw["plugins"] = ["benchmarks.soak_probe"]
    raw["operators"]["source"] = {"type": "SyntheticSource", "frames": frames, "size": [model_w, model_h], "seed": 1}
    # an explicit box at frame 0 and no release on the random refiner's empty mask: SAM 2 tracks every frame, so
    # every window measures the same work
    box = [model_w * 0.3, model_h * 0.3, model_w * 0.7, model_h * 0.7]
    prior = raw["operators"]["prior"]
    prior["model"]["image_size"] = image_size
    prior.update(seed={"box": box}, seeding={**prior["seeding"], "release_after": 0})
    raw["operators"]["refiner"]["artifact"] = str(refiner_onnx)
    raw["operators"]["metrics"]["path"] = str(out / "metrics.json")
    raw["operators"]["latency"]["path"] = str(out / "latency.json")
    raw["operators"]["rss"] = {"type": "RSSProbe", "path": str(out / "rss.json"), "every": max(1, window // 5),
                              "cpu_path": str(out / "cpu.json")}
    raw["flows"].append(["ema", "rss"])
    return raw


def soak(frames: int, image_size: int, out: Path, window: int) -> dict[str, Any]:
    from benchmarks.refiner_latency import export_random_refiner

    raw = soak_graph(frames, image_size, Path("unset"), out, window)
    model_size = tuple(raw["operators"]["refiner"]["size"])
    (out / "refiner").mkdir(parents=True, exist_ok=True)
    artifact = export_random_refiner(model_size, out / "refiner", "nano")
    raw["operators"]["refiner"]["artifact"] = str(artifact.file("onnx"))
    run_graph(validate(raw, graph_path("replay_fast")))
    latency = json.loads((out / "latency.json").read_text())
    rss = json.loads((out / "rss.json").read_text())
    cpu = json.loads((out / "cpu.json").read_text())
    samples = latency["end_to_end_samples_ms"]
    warm = [mib for index, mib in rss if index >= window]
    result = {
        "frames": frames, "image_size": image_size, "window": window,
        "frames_processed": latency["frames_processed"], "frames_dropped": latency["frames_dropped"],
        "rss_mib_after_warmup": warm[0], "rss_mib_end": warm[-1], "rss_growth_mib": warm[-1] - warm[0],
        "rss_max_mib": max(mib for _, mib in rss),
        "median_ms_first_window": float(np.median(samples[:window])),
        "median_ms_last_window": float(np.median(samples[-window:])),
    }
    result["latency_ratio_last_over_first"] = result["median_ms_last_window"] / result["median_ms_first_window"]
    result["cpu_ms_per_frame_first_window"] = float(np.median(cpu[:window]))
    result["cpu_ms_per_frame_last_window"] = float(np.median(cpu[-window:]))
    result["cpu_ratio_last_over_first"] = result["cpu_ms_per_frame_last_window"] / result["cpu_ms_per_frame_first_window"]
    result["pass"] = {"rss": result["rss_growth_mib"] <= RSS_LIMIT_MIB,
                      "latency": result["latency_ratio_last_over_first"] <= LATENCY_RATIO_LIMIT,
                      "no_drops": result["frames_dropped"] == 0 and result["frames_processed"] == frames}
    return result


def main() -> None:
    from benchmarks.common import write_result

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256, help="SAM 2 input size")
    parser.add_argument("--window", type=int, default=1000, help="frames compared at the start and the end")
    parser.add_argument("--name", default="soak")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = soak(args.frames, args.size, Path(tmp), args.window)
    log.info("RSS growth %.1f MiB (limit %.0f), latency last/first %.3f (limit %.2f), CPU time last/first %.3f, "
             "dropped %d → %s", result["rss_growth_mib"], RSS_LIMIT_MIB, result["latency_ratio_last_over_first"],
             LATENCY_RATIO_LIMIT, result["cpu_ratio_last_over_first"], result["frames_dropped"], result["pass"])
    log.info("wrote %s", write_result(args.name, result))


if __name__ == "__main__":
    main()
