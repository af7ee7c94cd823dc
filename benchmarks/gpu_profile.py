"""Where a GPU frame's time goes: per-step SAM 2 times, torch profiler tables, and the replay graph's per-operator
latency. Run after `make gpu-check` on a CUDA machine; writes text and JSON files into --out.

Usage: python benchmarks/gpu_profile.py --out DIR [--graph-frames 150]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_check import (REPLAY_GRAPH, graph_overrides, ensure_importable,  # noqa: E402
                                  export_check_refiner, install_wheels)

log = logging.getLogger("gpu_profile")


def sam2_step_profile(out: Path, side: int, precision: str) -> dict:
    """Per-step wall times over 40 steps (memory writes every 5th), then a profiler table over 10 steps."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.refiner_latency import sam2_step_call

    step = sam2_step_call((720, 1280), side, 40, device="cuda", precision=precision)
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(40):
        started = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            step()
        torch.cuda.synchronize()
    tag = f"sam2_{side}_{precision}"
    averages = prof.key_averages()
    (out / f"{tag}.txt").write_text(
        averages.table(sort_by="self_cpu_time_total", row_limit=30) + "\n\n"
        + averages.table(sort_by="self_cuda_time_total", row_limit=30))
    return {"side": side, "precision": precision, "step_ms": [round(t, 2) for t in times],
            "gpu_kernel_ms_per_step": sum(a.self_device_time_total for a in averages) / 1000 / 10,
            "cpu_ms_per_step": sum(a.self_cpu_time_total for a in averages) / 1000 / 10}


def refiner_profile(out: Path, artifact) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.refiner_latency import refiner_call
    from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig

    call = refiner_call(RefinerRuntime(artifact, RuntimeConfig(backend="torch", device="cuda")), "cuda")
    for _ in range(20):
        call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            call()
        torch.cuda.synchronize()
    averages = prof.key_averages()
    (out / "refiner.txt").write_text(averages.table(sort_by="self_cuda_time_total", row_limit=30))
    return {"gpu_kernel_ms_per_call": sum(a.self_device_time_total for a in averages) / 1000 / 20}


def graph_latency(out: Path, artifact, frames: int) -> dict:
    folder = out / "graph"
    folder.mkdir(exist_ok=True)
    overrides = graph_overrides(artifact, folder, True, frames)
    command = [sys.executable, "-m", "surgseg.app.cli", "run", str(REPLAY_GRAPH), "--frames", str(frames)]
    command += [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    (out / "graph_log.txt").write_text(done.stdout[-20000:] + done.stderr[-20000:])
    latency = folder / "latency.json"
    return json.loads(latency.read_text()) if latency.is_file() else {"exit": done.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--graph-frames", type=int, default=150)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args.out.mkdir(parents=True, exist_ok=True)
    install_wheels()
    ensure_importable()
    from surgseg.operators.holoscan_loader import prepare_holoscan

    prepare_holoscan()
    result: dict = {}
    result["sam2"] = [sam2_step_profile(args.out, 512, "bf16"), sam2_step_profile(args.out, 512, "fp32")]
    log.info("sam2: %s", [(r["gpu_kernel_ms_per_step"], r["cpu_ms_per_step"]) for r in result["sam2"]])
    with tempfile.TemporaryDirectory() as tmp:
        artifact, _ = export_check_refiner(Path(tmp), None)
        result["refiner"] = refiner_profile(args.out, artifact)
        result["graph"] = graph_latency(args.out, artifact, args.graph_frames)
    (args.out / "gpu_profile.json").write_text(json.dumps(result, indent=1))
    log.info("%s", json.dumps(result)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
